// The nano segmenter (nano/segmenter.py, built by scripts/nano-setup.sh into .nano/models/sam2)
// run by the project's own SAM2 ONNX code, unchanged: on held-out nano test videos its masks
// beat the trivial baseline (the prompt box filled) in IoU, in image mode and through the video
// memory loop from a keyframe.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { loadSam2Models, type Sam2Models } from '../../activities/segment/models.js';
import { segmentImage } from '../../activities/segment/sam2-image.js';
import { ephemeralTrackerStore, trackVideo } from '../../activities/segment/sam2-video.js';
import { repoRoot } from '../support/paths.js';

const nanoDir = resolve(repoRoot, process.env.NANO_DIR ?? '.nano');
const modelsDir = join(nanoDir, 'models', 'sam2');
const dataDir = join(nanoDir, 'data');

interface Sample {
  video: string;
  oid: string;
  objects: { oid: string; boxes: [number, number, number, number][] }[];
}

let image: Sam2Models;
let video: Sam2Models;
let samples: Sample[];

before(async () => {
  assert.ok(
    existsSync(join(modelsDir, 'sam2_config.json')) && existsSync(join(dataDir, 'meta.json')),
    `${modelsDir} or ${dataDir} is missing: run bash scripts/nano-setup.sh (make deps-nano) first`,
  );
  image = await loadSam2Models(modelsDir, 'image');
  video = await loadSam2Models(modelsDir, 'video');
  const meta = JSON.parse(readFileSync(join(dataDir, 'meta.json'), 'utf8')) as {
    splits: { test: Sample[] };
  };
  samples = meta.splits.test;
});
after(async () => {
  for (const m of [image, video]) for (const g of Object.values(m?.graphs ?? {})) await g?.release();
});

async function groundTruth(s: Sample, frame: string): Promise<Uint8Array> {
  const file = join(dataDir, 'test', 'Annotations', s.video, s.oid, `${frame}.png`);
  const { data } = await sharp(file).greyscale().raw().toBuffer({ resolveWithObject: true });
  return data;
}

function iou(a: Uint8Array, b: Uint8Array): number {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]! > 127;
    const y = b[i]! > 127;
    if (x && y) inter++;
    if (x || y) union++;
  }
  return union === 0 ? 1 : inter / union;
}

function boxMask(box: readonly number[], w: number, h: number): Uint8Array {
  const m = new Uint8Array(w * h);
  for (let y = box[1]!; y <= box[3]!; y++) for (let x = box[0]!; x <= box[2]!; x++) m[y * w + x] = 255;
  return m;
}

function mean(v: number[]): number {
  return v.reduce((a, b) => a + b, 0) / v.length;
}

test('image mode: masks from a box + point prompt beat the box itself on held-out frames', async () => {
  const model: number[] = [];
  const baseline: number[] = [];
  for (const s of samples.slice(0, 16)) {
    const t = 4;
    const frame = String(t).padStart(5, '0');
    const box = s.objects.find((o) => o.oid === s.oid)!.boxes[t]!;
    const gt = await groundTruth(s, frame);
    const file = join(dataDir, 'test', 'JPEGImages', s.video, `${frame}.jpg`);
    const point: [number, number] = [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2];
    const r = await segmentImage(image, { data: file, label: file }, { box: [...box], point });
    model.push(iou(r.mask, gt));
    baseline.push(iou(boxMask(box, r.width, r.height), gt));
  }
  console.log(
    `image mode IoU: nano segmenter ${mean(model).toFixed(3)}, box baseline ${mean(baseline).toFixed(3)}`,
  );
  assert.ok(mean(model) > mean(baseline), `segmenter ${mean(model)} ≤ box ${mean(baseline)}`);
});

test('video mode: propagation from a keyframe box beats the keyframe box held still', async () => {
  const model: number[] = [];
  const baseline: number[] = [];
  for (const s of samples.slice(0, 4)) {
    const boxes = s.objects.find((o) => o.oid === s.oid)!.boxes;
    const k = 4;
    const names = Array.from({ length: boxes.length }, (_, i) => String(i).padStart(5, '0'));
    const masks = new Map<number, Uint8Array>();
    let size = { w: 0, h: 0 };
    await trackVideo(
      video,
      {
        count: names.length,
        name: (i) => names[i]!,
        load: async (i) => {
          const file = join(dataDir, 'test', 'JPEGImages', s.video, `${names[i]}.jpg`);
          return { data: file, label: file };
        },
      },
      ephemeralTrackerStore(async (m) => {
        masks.set(m.frame, m.mask);
        size = { w: m.width, h: m.height };
      }),
      { keyframe: k, prompt: { box: [...boxes[k]!] } },
    );
    for (let t = 0; t < names.length; t++) {
      const gt = await groundTruth(s, names[t]!);
      model.push(iou(masks.get(t)!, gt));
      baseline.push(iou(boxMask(boxes[k]!, size.w, size.h), gt));
    }
  }
  console.log(
    `video J: nano segmenter ${mean(model).toFixed(3)}, still keyframe box ${mean(baseline).toFixed(3)}`,
  );
  assert.ok(mean(model) > mean(baseline), `segmenter ${mean(model)} ≤ still box ${mean(baseline)}`);
});
