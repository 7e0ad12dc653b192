import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { formatImageInformation } from '../../core/protocol/observations.js';
import { encoderFromConfig } from '../../activities/embeddings/activities.js';
import { BadInputError } from '../../activities/errors.js';
import { backendFactory } from '../../activities/search/activities.js';
import { defaultTextTopk, sanitiseQuery, textObservation } from '../../activities/search/service.js';
import { BackendNames, type BackendName } from '../../activities/search/types.js';
import { cliContext } from '../context.js';
import { intInRange } from '../option-parsers.js';
import { outputFormat } from '../output.js';

interface SearchOptions {
  backend?: string;
  corpus?: string;
  imageCorpus?: string;
  imageDir?: string;
  topk?: number;
  json?: boolean;
  image?: boolean;
  hybrid?: boolean;
  retriever?: string;
}

export function register(program: Command): void {
  program
    .command('search')
    .description(
      'search the configured backend directly (no cache, no workflow): prints the <information> observation the policy would see, or --json results',
    )
    .argument('<query>', 'the search query')
    .option('--backend <name>', `one of ${BackendNames.join(', ')} (default: search.backend)`)
    .option(
      '--corpus <file>',
      'Search-R1 JSONL corpus for the local backend (default: search.local.textCorpus)',
    )
    .option('--image-corpus <file>', 'image corpus JSONL for the local backend')
    .option('--image-dir <dir>', 'folder of the image corpus files (default: images/ beside --image-corpus)')
    .option(
      '--topk <n>',
      'number of results, 1-1000 (default: search.textTopk, Serper search.serper.textTopk / imageTopk)',
      intInRange('--topk', 1, 1000),
    )
    .option('--image', 'image search instead of text search')
    .option(
      '--retriever <name>',
      'local backend: bm25, e5 (dense, needs search.local.e5.url) or hybrid (BM25 + e5 fused by rank) (default: search.local.retriever)',
    )
    .option('--hybrid', 'local backend, BM25 retriever: blend in dense scores of the ONNX encoder')
    .option('--json', 'same as --output json: print {"results":[{"id","title","text","score"}]}')
    .action(async (query: string, opts: SearchOptions, cmd: Command) => {
      if (opts.backend !== undefined && !(BackendNames as readonly string[]).includes(opts.backend)) {
        throw new BadInputError(
          `--backend ${JSON.stringify(opts.backend)} is not one of ${BackendNames.join(', ')}`,
        );
      }
      const json = outputFormat(cmd) === 'json';
      const topk = opts.topk;
      const { config, logger } = cliContext(cmd, {
        'search.backend': opts.backend,
        'search.local.textCorpus': opts.corpus,
        'search.local.imageCorpus': opts.imageCorpus,
        'search.local.imageDir':
          opts.imageDir ?? (opts.imageCorpus ? join(dirname(opts.imageCorpus), 'images') : undefined),
        'search.local.hybrid': opts.hybrid,
        'search.local.retriever': opts.retriever,
      });
      const name = config.search.backend as BackendName;
      const backend = await backendFactory(config.search, {
        logger,
        encoder: encoderFromConfig(config.embeddings),
      })(name);
      const q = sanitiseQuery(query);
      if (q === '')
        throw new BadInputError('the query is empty (after removing whitespace and double quotes)');
      if (opts.image) {
        const hits = await backend.searchImages(q, topk ?? config.search.imageTopk);
        const shown = hits.slice(0, topk ?? config.search.imageTopk);
        if (json) {
          const results = shown.map((h) => ({
            id: h.id,
            title: h.title,
            text: h.source.kind === 'file' ? h.source.path : h.source.url,
            score: h.score,
          }));
          console.log(JSON.stringify({ results }));
        } else {
          process.stdout.write(formatImageInformation(shown.map((h) => h.title)));
          for (const h of shown)
            console.log(`  image: ${h.source.kind === 'file' ? h.source.path : h.source.url}`);
        }
        return;
      }
      const textTopk = topk ?? defaultTextTopk(config.search, name);
      const hits = await backend.searchText(q, textTopk);
      if (json) {
        console.log(
          JSON.stringify({
            results: hits.map((h) => ({ id: h.id, title: h.title, text: h.text, score: h.score })),
          }),
        );
      } else {
        process.stdout.write(textObservation(config.search, name, hits, textTopk));
      }
    });
}
