// Training-test helpers: the trainer's Python venv (trainer/setup.sh), a tiny model built from
// scratch and uploaded as policy version 0, a small prepared dataset, and the Python trainer worker
// as a separate process (started and killed like in production).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, writeFile, mkdir } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import assert from 'node:assert/strict';
import type { Client } from '@temporalio/client';
import sharp from 'sharp';
import type { ArtifactStore } from '../../activities/storage/artifact-store.js';
import { readManifest } from '../../activities/datasets/manifest.js';
import { prepareDataset } from '../../activities/datasets/prepare.js';
import { NON_SEARCH_SYSTEM_PROMPT, SEARCH_SYSTEM_PROMPT } from '../../core/protocol/prompts.js';
import type { TrainingStatus } from '../../workflows/training-run.js';
import { repoRoot, sharedData } from './paths.js';
import { startProcess, type WorkerProcess } from './stack.js';

export const trainerPython = join(repoRoot, '.venv/trainer/bin/python');

/** Fails with the command to run when the trainer venv is missing. */
export function requireTrainerVenv(): void {
  if (!existsSync(trainerPython)) {
    throw new Error(`the trainer venv is missing: run \`bash trainer/setup.sh\` (${trainerPython})`);
  }
}

/** Builds the tiny GPT-2-style model (tokenizer trained on the prompts) and uploads it as v0. */
export async function uploadTinyModel(store: ArtifactStore, dir: string, key: string): Promise<string> {
  requireTrainerVenv();
  await mkdir(dir, { recursive: true });
  const corpus = join(dir, 'corpus.txt');
  await writeFile(corpus, `${SEARCH_SYSTEM_PROMPT}\n${NON_SEARCH_SYSTEM_PROMPT}\n`);
  const out = join(dir, 'model');
  const r = spawnSync(
    trainerPython,
    [
      '-m',
      'segflow_trainer.tiny_model',
      '--out',
      out,
      '--corpus',
      corpus,
      '--vocab',
      '1024',
      '--positions',
      '2048',
    ],
    { cwd: join(repoRoot, 'trainer'), encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`tiny_model failed:\n${r.stdout}\n${r.stderr}`);
  return uploadFolder(store, out, key);
}

/** Uploads a model folder's files under `key/`; returns its s3:// prefix. */
async function uploadFolder(store: ArtifactStore, dir: string, key: string): Promise<string> {
  for (const name of await readdir(dir)) {
    await store.putFile(
      `${key}/${name}`,
      join(dir, name),
      name.endsWith('.json') ? 'application/json' : 'application/octet-stream',
    );
  }
  return store.uriOf(`${key}/`);
}

/**
 * Builds the tiny Qwen2.5-VL (trainer/segflow_trainer/tiny_qwen_vl.py: the real architecture, random
 * weights) into `dir` and uploads it as a run's version 0; returns the folder and its URI.
 */
export async function uploadTinyQwenVl(
  store: ArtifactStore,
  dir: string,
  key: string,
): Promise<{ folder: string; uri: string }> {
  requireTrainerVenv();
  const r = spawnSync(trainerPython, ['-m', 'segflow_trainer.tiny_qwen_vl', '--out', dir], {
    cwd: join(repoRoot, 'trainer'),
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`tiny_qwen_vl failed:\n${r.stdout}\n${r.stderr}`);
  return { folder: dir, uri: await uploadFolder(store, dir, key) };
}

/** A rectangle mask covering x 20–70 %, y 25–80 % of the image (the scripted answer's box). */
async function rectangleMask(image: string, path: string): Promise<void> {
  const { width = 0, height = 0 } = await sharp(image).metadata();
  const data = Buffer.alloc(width * height, 0);
  for (let y = Math.round(height * 0.25); y < Math.round(height * 0.8); y++) {
    data.fill(255, y * width + Math.round(width * 0.2), y * width + Math.round(width * 0.7));
  }
  await sharp(data, { raw: { width, height, channels: 1 } })
    .png()
    .toFile(path);
}

/** A prepared dataset of the shared photos; questions carry markers the scripted policy reads. */
export async function prepareTrainingDataset(
  store: ArtifactStore,
  dir: string,
  questions: { id: string; image: string; query: string; ability?: string }[],
): Promise<string> {
  await mkdir(dir, { recursive: true });
  const lines: string[] = [];
  for (const q of questions) {
    const image = sharedData('images', q.image);
    const mask = join(dir, `${q.id}-mask.png`);
    await rectangleMask(image, mask);
    lines.push(
      JSON.stringify({ id: q.id, media: image, query: q.query, mask, ability: q.ability ?? 'in-video' }),
    );
  }
  const manifest = join(dir, 'manifest.jsonl');
  await writeFile(manifest, lines.join('\n') + '\n');
  const samples = await readManifest(manifest, { split: 'train' });
  const { index } = await prepareDataset(
    store,
    samples,
    { format: 'manifest', split: 'train', source: 'training-test' },
    { frames: 1 },
  );
  return index.uri;
}

/**
 * What the trainer needs to train the nano policy: its family module (nano/trainer_family.py, a
 * plugin of trainer/segflow_trainer/family.py) and the repository root on PYTHONPATH to import it.
 */
export function nanoTrainerEnv(): NodeJS.ProcessEnv {
  const path = [repoRoot, join(repoRoot, 'trainer'), process.env.PYTHONPATH].filter(Boolean);
  return { SEGFLOW_TRAINER_FAMILIES: 'nano.trainer_family', PYTHONPATH: path.join(delimiter) };
}

/** Starts the Python trainer worker and waits until it polls. */
export async function startTrainerProcess(env: NodeJS.ProcessEnv = {}): Promise<WorkerProcess> {
  requireTrainerVenv();
  return startProcess(trainerPython, ['-m', 'segflow_trainer.worker'], {
    cwd: join(repoRoot, 'trainer'),
    env,
    readyText: 'trainer polling',
    name: 'trainer',
    timeoutMs: 90_000,
  });
}

/**
 * Polls a trainingRun's status query until `until` holds (a query that fails between runs of the
 * continue-as-new chain, or while a worker restarts, is tried again); fails after `timeoutMs`.
 */
export async function waitTrainingStatus(
  client: Client,
  runId: string,
  until: (s: TrainingStatus) => boolean,
  what: string,
  opts: { timeoutMs?: number; pollMs?: number } = {},
): Promise<TrainingStatus> {
  const deadline = Date.now() + (opts.timeoutMs ?? 150_000);
  for (;;) {
    try {
      const s = await client.workflow.getHandle(runId).query<TrainingStatus>('status');
      if (until(s)) return s;
    } catch {
      /* between runs of the chain, or a worker restarting */
    }
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 100));
  }
}
