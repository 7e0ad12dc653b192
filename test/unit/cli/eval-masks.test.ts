// `segr eval-masks` against golden values computed with the DAVIS definitions in Python.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { repoRoot, sharedData } from '../../support/paths.js';
import { loadGolden, renderMask, type MaskSpec } from '../core/golden-masks.js';

interface Golden {
  synthetic: { name: string; pred: MaskSpec; gt: MaskSpec; J: number; F: number }[];
  folders: {
    pred: string;
    gt: string;
    shift: number;
    count: number;
    frameJ: number[];
    frameF: number[];
    J: number;
    F: number;
    JF: number;
  }[];
}
interface Output {
  frames: { name: string; J: number; F: number }[];
  J: number;
  F: number;
  JF: number;
}

const golden = loadGolden<Golden>('davis.json');
const root = mkdtempSync(join(tmpdir(), 'segflow-eval-masks-'));
after(() => rmSync(root, { recursive: true, force: true }));

function evalMasks(pred: string, gt: string): Output {
  const r = spawnSync(
    process.execPath,
    [join(repoRoot, 'bin', 'segr.js'), 'eval-masks', '--pred', pred, '--gt', gt],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Output;
}

async function writePng(path: string, spec: MaskSpec): Promise<void> {
  const m = renderMask(spec);
  const px = Buffer.from(m.data.map((v) => (v ? 255 : 0)));
  await sharp(px, { raw: { width: m.width, height: m.height, channels: 1 } })
    .png()
    .toFile(path);
}

/** A pred/gt folder pair holding one frame of a golden synthetic case. */
async function caseFolders(name: string, opts: { omitPred?: boolean } = {}) {
  const c = golden.synthetic.find((s) => s.name === name);
  assert.ok(c, name);
  const dir = join(root, name.replace(/[^a-z0-9]+/gi, '-'));
  mkdirSync(join(dir, 'pred'), { recursive: true });
  mkdirSync(join(dir, 'gt'), { recursive: true });
  await writePng(join(dir, 'gt', '00000.png'), c.gt);
  if (!opts.omitPred) await writePng(join(dir, 'pred', '00000.png'), c.pred);
  return { pred: join(dir, 'pred'), gt: join(dir, 'gt'), c };
}

function close(a: number, b: number, what: string): void {
  assert.ok(Math.abs(a - b) <= 1e-6, `${what}: ${a} vs ${b}`);
}

void test('real masks: dog predictions against blackswan masks (50 frames) match the reference', () => {
  const g = golden.folders.find((f) => f.pred === 'dog' && f.gt === 'blackswan');
  assert.ok(g);
  const out = evalMasks(sharedData('davis_osvos', 'dog'), sharedData('davis_osvos', 'blackswan'));
  assert.equal(out.frames.length, 50);
  out.frames.forEach((f, i) => {
    close(f.J, g.frameJ[i] ?? NaN, `frame ${f.name} J`);
    close(f.F, g.frameF[i] ?? NaN, `frame ${f.name} F`);
  });
  close(out.J, g.J, 'J');
  close(out.F, g.F, 'F');
  close(out.JF, g.JF, 'J&F');
});

void test('real masks: time-shifted blackswan and judo (multi-object palette) predictions match the reference', () => {
  for (const seq of ['blackswan', 'judo']) {
    const g = golden.folders.find((f) => f.pred === seq && f.gt === seq);
    assert.ok(g, seq);
    // Predictions are the masks `shift` frames later, under the earlier frame's name (symlinks, no copies).
    const pred = join(root, `${seq}-shifted`);
    const gt = join(root, `${seq}-gt`);
    mkdirSync(pred);
    mkdirSync(gt);
    for (let i = 0; i < g.count; i++) {
      const name = `${String(i).padStart(5, '0')}.png`;
      symlinkSync(sharedData('davis_osvos', seq, name), join(gt, name));
      symlinkSync(
        sharedData('davis_osvos', seq, `${String(i + g.shift).padStart(5, '0')}.png`),
        join(pred, name),
      );
    }
    const out = evalMasks(pred, gt);
    assert.equal(out.frames.length, g.count);
    out.frames.forEach((f, i) => close(f.F, g.frameF[i] ?? NaN, `${seq} ${f.name} F`));
    close(out.J, g.J, `${seq} J`);
    close(out.F, g.F, `${seq} F`);
    close(out.JF, g.JF, `${seq} J&F`);
    assert.ok(out.J > 0.5 && out.J < 1, `${seq}: a real, imperfect overlap (J ${out.J})`);
  }
});

void test('edge case: both masks empty gives J = F = 1', async () => {
  const { pred, gt, c } = await caseFolders('both empty');
  const out = evalMasks(pred, gt);
  assert.deepEqual(out, { frames: [{ name: '00000.png', J: c.J, F: c.F }], J: 1, F: 1, JF: 1 });
});

void test('edge case: empty prediction gives J = F = 0', async () => {
  const { pred, gt, c } = await caseFolders('empty prediction');
  const out = evalMasks(pred, gt);
  assert.deepEqual(out, { frames: [{ name: '00000.png', J: c.J, F: c.F }], J: 0, F: 0, JF: 0 });
});

void test('edge case: empty ground truth gives J = F = 0', async () => {
  const { pred, gt, c } = await caseFolders('empty ground truth');
  const out = evalMasks(pred, gt);
  assert.deepEqual(out, { frames: [{ name: '00000.png', J: c.J, F: c.F }], J: 0, F: 0, JF: 0 });
});

void test('edge case: a missing prediction file counts as an empty mask', async () => {
  const { pred, gt } = await caseFolders('empty prediction', { omitPred: true });
  // Only the ground truth is written; the golden value is that of an empty prediction.
  const c = golden.synthetic.find((s) => s.name === 'empty prediction');
  const out = evalMasks(pred, gt);
  assert.equal(out.frames.length, 1);
  close(out.J, c?.J ?? NaN, 'J');
  close(out.F, c?.F ?? NaN, 'F');
  assert.equal(out.JF, 0);
});

void test('edge case: one-pixel masks in the corners match the reference', async () => {
  for (const name of [
    'one pixel, top-left corner, both',
    'one pixel, bottom-right corner, both',
    'one pixel, opposite corners',
    'one pixel, top-right vs bottom-left',
    'one pixel near a corner pixel',
  ]) {
    const { pred, gt, c } = await caseFolders(name);
    const out = evalMasks(pred, gt);
    close(out.J, c.J, `${name} J`);
    close(out.F, c.F, `${name} F`);
  }
});

void test('a prediction of the wrong size is refused with both sizes in the message', async () => {
  const dir = join(root, 'wrong-size');
  mkdirSync(join(dir, 'pred'), { recursive: true });
  mkdirSync(join(dir, 'gt'), { recursive: true });
  await writePng(join(dir, 'gt', 'a.png'), { width: 10, height: 8 });
  await writePng(join(dir, 'pred', 'a.png'), { width: 8, height: 10 });
  writeFileSync(join(dir, 'gt', 'notes.txt'), 'not a mask');
  const r = spawnSync(
    process.execPath,
    [join(repoRoot, 'bin', 'segr.js'), 'eval-masks', '--pred', join(dir, 'pred'), '--gt', join(dir, 'gt')],
    {
      encoding: 'utf8',
    },
  );
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /8×10 but .* is 10×8/);
});
