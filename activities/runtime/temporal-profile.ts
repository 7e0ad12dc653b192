/**
 * The Temporal SDKs' environment configuration (`@temporalio/envconfig`): a profile of the TOML
 * client config file (`TEMPORAL_CONFIG_FILE`, else the platform's default path such as
 * `~/.config/temporalio/temporal.toml`; profile `TEMPORAL_PROFILE`, else "default") with the
 * standard `TEMPORAL_*` variables applied over it. The same file and variables configure the
 * `temporal` CLI, the Python trainer (temporalio.envconfig) and every other Temporal client, so one
 * Secret/ConfigMap serves them all. segflow's own settings (file, `SEGFLOW_*`, flags) win over it.
 */
import { existsSync } from 'node:fs';
import { loadClientConfigProfile, type ClientConfigProfile } from '@temporalio/envconfig';
import { ConfigError } from '../errors.js';

/** Dotted segflow config keys and their values from the active Temporal profile. */
export function temporalProfileValues(env: NodeJS.ProcessEnv): {
  values: [string, unknown][];
  source: string;
} {
  const name = env.TEMPORAL_PROFILE;
  const file = env.TEMPORAL_CONFIG_FILE;
  const source = `temporal profile "${name ?? 'default'}"${file ? ` of ${file}` : ''}`;
  // the SDK treats a missing file as an empty config; a file named explicitly must exist
  if (file && !existsSync(file)) {
    throw new ConfigError(`TEMPORAL_CONFIG_FILE ${file} does not exist: fix the path or unset it`, { file });
  }
  let profile: ClientConfigProfile;
  try {
    profile = loadClientConfigProfile({
      ...(name ? { profile: name } : {}),
      ...(file ? { configSource: { path: file } } : {}),
      // segflow maps the TEMPORAL_* variables itself (after this): the profile is read from the file only
      disableEnv: true,
      overrideEnvVars: Object.fromEntries(
        Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined),
      ),
    });
  } catch (err) {
    throw new ConfigError(
      `cannot read the Temporal client config (${source}): ${(err as Error).message}; ` +
        'fix the file, or unset TEMPORAL_CONFIG_FILE / TEMPORAL_PROFILE',
      { ...(file ? { file } : {}), ...(name ? { profile: name } : {}) },
    );
  }
  const values: [string, unknown][] = [];
  const put = (key: string, value: unknown) => {
    if (value !== undefined) values.push([key, value]);
  };
  put('temporal.address', profile.address);
  put('temporal.namespace', profile.namespace);
  put('temporal.apiKey', profile.apiKey);
  const tls = profile.tls;
  if (tls && !tls.disabled) {
    put('temporal.tls.enabled', true);
    put('temporal.tls.serverName', tls.serverName);
    const data = (d: typeof tls.clientCert, pathKey: string, dataKey: string) => {
      if (!d) return;
      if ('path' in d) put(pathKey, d.path);
      else put(dataKey, typeof d.data === 'string' ? d.data : Buffer.from(d.data).toString('utf8'));
    };
    data(tls.serverCACert, 'temporal.tls.caCertPath', 'temporal.tls.caCertData');
    data(tls.clientCert, 'temporal.tls.clientCertPath', 'temporal.tls.clientCertData');
    data(tls.clientKey, 'temporal.tls.clientKeyPath', 'temporal.tls.clientKeyData');
  }
  return { values, source };
}
