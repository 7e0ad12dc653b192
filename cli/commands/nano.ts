/**
 * `segr nano publish`: puts the nano world that scripts/nano-setup.sh built (nano/README.md) into
 * S3, where workflows and workers take it from — the SFT policy (version 0 of a training run), the
 * segmenter in the sam2-onnx contract, and the train/test splits prepared as datasets:
 *
 * ```
 * nano/<build>/policy/v0/{config.json, model.safetensors, tokenizer.json}
 * nano/<build>/sam2/{*.onnx, sam2_config.json}
 * datasets/…  (segr dataset prepare; train without the anchor rule: the nano SFT traces and the
 *              test split use linspace frames, so RL trains on the frames evaluation shows)
 * ```
 *
 * `<build>` is a hash of the model files, so a rebuilt (different) world never overwrites another
 * and publishing the same world again writes nothing new. The URIs are printed as JSON and kept in
 * `<dir>/published.json`; a second run with the same build, limits and S3 endpoint reuses them
 * after checking that the dataset indexes still exist.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { readOkVos } from '../../activities/datasets/okvos.js';
import { prepareDataset } from '../../activities/datasets/prepare.js';
import { ArtifactStore } from '../../activities/storage/artifact-store.js';
import { cliContext } from '../context.js';
import { positiveInt } from '../option-parsers.js';
import { emit } from '../output.js';

export interface NanoPublished {
  schema: 'segflow.nano-published/1';
  endpoint: string;
  bucket: string;
  build: string;
  limits: { train: number | null; test: number | null };
  /** s3:// prefix of the SFT policy (a nano checkpoint folder): `--initial-policy` of a run. */
  policy: string;
  /** s3:// prefix of the segmenter's ONNX files. */
  sam2: string;
  /** Prepared dataset indexes. */
  train: string;
  test: string;
  /** The knowledge corpus (local search backend file). */
  corpus: string;
}

/** A nano policy checkpoint (nano/policy_model.py `save`). */
const POLICY_FILES = ['config.json', 'model.safetensors', 'tokenizer.json'];

async function filesOf(dir: string, names?: string[]): Promise<string[]> {
  if (!existsSync(dir))
    throw new Error(`${dir} is missing: run bash scripts/nano-setup.sh (make deps-nano) first`);
  const all = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name);
  const want = names ?? all.filter((n) => n.endsWith('.onnx') || n.endsWith('.json'));
  for (const n of want)
    if (!all.includes(n)) throw new Error(`${dir}/${n} is missing: run bash scripts/nano-setup.sh first`);
  return want.sort();
}

async function sha256File(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

/** Uploads (or finds) the nano world in S3; see the module doc. */
export async function publishNanoWorld(
  store: ArtifactStore,
  opts: {
    dir: string;
    trainLimit?: number;
    testLimit?: number;
    /** The S3 endpoint (part of the cache key: another stack needs its own upload). */
    endpoint?: string;
    log?: (msg: string) => void;
  },
): Promise<NanoPublished> {
  const dir = resolve(opts.dir);
  const log = opts.log ?? (() => undefined);
  const policyDir = join(dir, 'models', 'policy', 'v0');
  const sam2Dir = join(dir, 'models', 'sam2');
  const dataDir = join(dir, 'data');
  const policyFiles = await filesOf(policyDir, POLICY_FILES);
  const sam2Files = await filesOf(sam2Dir);
  const h = createHash('sha256');
  for (const [d, names] of [
    [policyDir, policyFiles],
    [sam2Dir, sam2Files],
  ] as const)
    for (const n of names) h.update(`${n}:${await sha256File(join(d, n))}\n`);
  for (const split of ['train', 'test'])
    h.update(`${split}:${await sha256File(join(dataDir, `${split}.parquet`))}\n`);
  const build = h.digest('hex').slice(0, 16);
  const limits = { train: opts.trainLimit ?? null, test: opts.testLimit ?? null };
  const cacheFile = join(dir, 'published.json');
  const endpoint = opts.endpoint ?? '';

  if (existsSync(cacheFile)) {
    const cached = JSON.parse(await readFile(cacheFile, 'utf8')) as NanoPublished;
    if (
      cached.schema === 'segflow.nano-published/1' &&
      cached.build === build &&
      cached.bucket === store.bucket &&
      cached.endpoint === endpoint &&
      cached.limits.train === limits.train &&
      cached.limits.test === limits.test &&
      (await store.head(cached.train)) &&
      (await store.head(cached.test)) &&
      (await store.head(`${cached.policy}model.safetensors`))
    ) {
      log(`nano world ${build} already in S3`);
      return cached;
    }
  }

  const upload = async (from: string, names: string[], prefix: string): Promise<string> => {
    for (const n of names) {
      await store.putFile(
        `${prefix}/${n}`,
        join(from, n),
        n.endsWith('.json') ? 'application/json' : 'application/octet-stream',
      );
    }
    return store.uriOf(`${prefix}/`);
  };
  const policy = await upload(policyDir, policyFiles, `nano/${build}/policy/v0`);
  const sam2 = await upload(sam2Dir, sam2Files, `nano/${build}/sam2`);
  log(`models uploaded: ${policy} ${sam2}`);
  const indexes: Record<'train' | 'test', string> = { train: '', test: '' };
  for (const split of ['train', 'test'] as const) {
    const all = await readOkVos(join(dataDir, `${split}.parquet`), { split });
    const limit = limits[split];
    const samples = limit ? all.slice(0, limit) : all;
    const { index } = await prepareDataset(
      store,
      samples,
      { format: 'okvos', split, source: join(dataDir, `${split}.parquet`) },
      {
        frames: 6,
        patchFactor: 32,
        coordinates: { kind: 'qwen3vl', scale: 1000 },
        anchor: false,
        // each sample waits on S3 round trips between its frame resizes: 4 at a time keep 2 cores busy
        concurrency: 4,
        onSample: (done, total) => {
          if (done === total || done % 20 === 0) log(`${split}: ${done}/${total} samples prepared`);
        },
      },
    );
    indexes[split] = index.uri;
  }
  const published: NanoPublished = {
    schema: 'segflow.nano-published/1',
    endpoint,
    bucket: store.bucket,
    build,
    limits,
    policy,
    sam2,
    train: indexes.train,
    test: indexes.test,
    corpus: join(dataDir, 'corpus.jsonl'),
  };
  await writeFile(cacheFile, JSON.stringify(published, null, 2) + '\n');
  return published;
}

export function register(program: Command): void {
  const nano = program
    .command('nano')
    .description('the nano world (nano/README.md): a CPU-sized end-to-end setup');
  nano
    .command('publish')
    .description(
      'upload the nano world built by scripts/nano-setup.sh (policy v0, segmenter, train/test datasets) to S3; prints the URIs',
    )
    .option('--dir <dir>', 'the nano world folder', process.env.NANO_DIR ?? '.nano')
    .option('--train-limit <n>', 'prepare only the first n training samples', positiveInt('--train-limit'))
    .option('--test-limit <n>', 'prepare only the first n test samples', positiveInt('--test-limit'))
    .action(async (opts: { dir: string; trainLimit?: number; testLimit?: number }, cmd: Command) => {
      const { config, logger } = cliContext(cmd);
      const store = ArtifactStore.fromConfig(config.s3);
      try {
        const published = await publishNanoWorld(store, {
          dir: opts.dir,
          endpoint: config.s3.endpoint,
          ...(opts.trainLimit ? { trainLimit: opts.trainLimit } : {}),
          ...(opts.testLimit ? { testLimit: opts.testLimit } : {}),
          log: (msg) => logger.info(msg),
        });
        emit(cmd, published, JSON.stringify(published, null, 2));
      } finally {
        store.client.destroy();
      }
    });
}
