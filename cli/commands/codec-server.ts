import type { Command } from 'commander';
import { ConfigError } from '../../activities/errors.js';
import { payloadCodecFromConfig } from '../../activities/runtime/payload-codec.js';
import { startCodecServer } from '../../workers/codec-server.js';
import { cliContext } from '../context.js';

export function register(program: Command): void {
  program
    .command('codec-server')
    .description(
      'serve the payload codec (codec.keys) over the Temporal codec-server protocol, so the Web UI and ' +
        '`temporal` CLI show encrypted payloads decoded (POST /encode, /decode)',
    )
    .option('--listen <host:port>', 'address to listen on (codec.server.listen; default 127.0.0.1:8888)')
    .option(
      '--cors-origin <origins>',
      'comma-separated browser origins allowed to call it (codec.server.corsOrigins; default: the origin of temporal.uiUrl)',
    )
    .action(async (opts: { listen?: string; corsOrigin?: string }, cmd: Command) => {
      const ctx = cliContext(cmd, {
        'codec.server.listen': opts.listen,
        'codec.server.corsOrigins': opts.corsOrigin,
      });
      const codec = payloadCodecFromConfig(ctx.config);
      if (!codec) {
        throw new ConfigError(
          'segr codec-server needs the payload codec keys: set SEGFLOW_CODEC_KEYS (id:base64key, …) or ' +
            'SEGFLOW_CODEC_KEY_FILE, the same as the workers',
        );
      }
      const s = ctx.config.codec.server;
      const corsOrigins = s.corsOrigins ?? [new URL(ctx.config.temporal.uiUrl).origin];
      const { server, url } = await startCodecServer({
        codec,
        listen: s.listen,
        corsOrigins,
        authToken: s.authToken,
        logger: ctx.logger.child({ component: 'codec-server' }),
      });
      console.error(
        `segr codec-server: listening on ${url} (keys ${codec.keyIds.join(', ')}; CORS ${corsOrigins.join(', ')}; ` +
          `${s.authToken ? 'bearer token required' : 'no auth token'})`,
      );
      const stop = () => server.close();
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      await new Promise<void>((resolve) => server.once('close', () => resolve()));
    });
}
