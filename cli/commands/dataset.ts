// `segr dataset prepare`: OK-VOS, ReasonSeg or a JSONL manifest → per-sample records in S3.
import { Option, type Command } from 'commander';
import { readManifest } from '../../activities/datasets/manifest.js';
import { readOkVos } from '../../activities/datasets/okvos.js';
import { prepareDataset } from '../../activities/datasets/prepare.js';
import { readReasonSeg } from '../../activities/datasets/reasonseg.js';
import { datasetFormats, type DatasetFormat, type DatasetSample } from '../../activities/datasets/types.js';
import { ArtifactStore } from '../../activities/storage/artifact-store.js';
import { cliContext } from '../context.js';
import { positiveInt } from '../option-parsers.js';
import { emit } from '../output.js';
import { progressPrinter } from '../progress.js';

export async function readDataset(
  format: DatasetFormat,
  path: string,
  split?: string,
): Promise<DatasetSample[]> {
  const opts = split ? { split } : {};
  if (format === 'okvos') return readOkVos(path, opts);
  if (format === 'reasonseg') return readReasonSeg(path, opts);
  return readManifest(path, opts);
}

export function register(program: Command): void {
  const dataset = program
    .command('dataset')
    .description('datasets: prepare samples for training and evaluation');
  dataset
    .command('prepare <path>')
    .description(
      'turn a dataset into per-sample records in S3 (sampled frames, ground truth, masks), content-addressed; prints the index',
    )
    .addOption(
      new Option(
        '--format <format>',
        'okvos: {split}.parquet; reasonseg: a folder of LISA JSON + images; manifest: JSONL',
      )
        .choices([...datasetFormats])
        .makeOptionMandatory(),
    )
    .option('--split <split>', 'split name (default: from the file or folder name; manifests: test)')
    .option('--frames <K>', 'frames sampled per sample', positiveInt('--frames'), 6)
    .addOption(
      new Option('--model <model>', 'coordinate frame of the ground truth and patch factor')
        .choices(['qwen3vl', 'qwen25vl'])
        .default('qwen3vl'),
    )
    .option('--anchor', 'apply the training anchor rule (default: only for split "train")')
    .option('--no-anchor', 'never apply the anchor rule')
    .option('--limit <n>', 'prepare only the first n samples', positiveInt('--limit'))
    .action(
      async (
        path: string,
        opts: {
          format: DatasetFormat;
          split?: string;
          frames: number;
          model: 'qwen3vl' | 'qwen25vl';
          anchor?: boolean;
          limit?: number;
        },
        cmd: Command,
      ) => {
        const { config, logger } = cliContext(cmd);
        const all = await readDataset(opts.format, path, opts.split);
        const samples = opts.limit ? all.slice(0, opts.limit) : all;
        const split = samples[0]?.split ?? opts.split ?? 'test';
        const patchFactor = opts.model === 'qwen3vl' ? 32 : 28;
        const store = ArtifactStore.fromConfig(config.s3);
        const ac = new AbortController();
        process.once('SIGINT', () => ac.abort());
        const progress = progressPrinter({ label: `preparing ${split}` });
        try {
          const result = await prepareDataset(
            store,
            samples,
            { format: opts.format, split, source: path },
            {
              frames: opts.frames,
              patchFactor,
              coordinates:
                opts.model === 'qwen3vl'
                  ? { kind: 'qwen3vl', scale: 1000 }
                  : { kind: 'qwen25vl', resizedWidth: 448, resizedHeight: 448 },
              ...(opts.anchor !== undefined ? { anchor: opts.anchor } : {}),
              video: { maxFrames: config.media.maxVideoFrames, maxSeconds: config.media.maxVideoSeconds },
              signal: ac.signal,
              onSample: (done, total, id) => {
                logger.debug({ done, total, id }, 'sample prepared');
                progress(done, total);
              },
            },
          );
          const doc = { format: opts.format, split, ...result };
          emit(cmd, doc, JSON.stringify(doc, null, 2));
        } finally {
          store.client.destroy();
        }
      },
    );
}
