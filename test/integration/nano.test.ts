// The nano world end to end, everything built by scripts/nano-setup.sh (make deps-nano) into .nano:
// - the nano segmenter (nano/segmenter.py, .nano/models/sam2) run by the project's own SAM2 ONNX
//   code, unchanged: on held-out nano test videos its masks beat the trivial baseline (the prompt
//   box filled) in IoU, in image mode and through the video memory loop from a keyframe;
// - the SFT-warmed nano policy (nano/policy_sft.py, .nano/models/policy/v0) served by
//   nano/policy_server.py (OpenAI/vLLM wire format) to a real worker process on the dev stack:
//   segmentQuery on held-out nano videos, searches answered by the nano corpus, masks in S3, J&F.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { TaskQueues } from '../../core/queues.js';
import type { SegmentQueryResult } from '../../workflows/segment-query.js';
import type { Trajectory } from '../../workflows/rollout.js';
import { evalMaskFolders } from '../../cli/commands/eval-masks.js';
import { startWorkerProcess, testClient, testConfig, testStore, uniqueId } from '../support/stack.js';
import { loadSam2Models, type Sam2Models } from '../../activities/segment/models.js';
import { segmentImage } from '../../activities/segment/sam2-image.js';
import { ephemeralTrackerStore, trackVideo } from '../../activities/segment/sam2-video.js';
import { nanoDir, nanoPython, startNanoPolicyServer } from '../support/nano.js';

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

// ---- the policy, end to end -------------------------------------------------------------------

const policyDir = join(nanoDir, 'models', 'policy', 'v0');

interface QuerySample {
  id: string;
  video: string;
  oid: string;
  ability: string;
  query: string;
}

// This test checks the pipeline with a trained policy, not how good the warm-up came out: that is
// the learning test's job (nano-training.test.ts, 48 held-out prompts, stated statistics). The
// warm-up is the best of four seeds (nano/policy_select.py), but which one wins, and how good it is,
// depends on the CPU's float rounding, so the bars sit where any warm-up that learnt the protocol
// clears them on 12 queries and a broken pipeline or an untrained policy (0/12 usable) does not:
// - usable answers ≥ 1/3: measured warm-ups reach 0.56–0.79 of the 48 held-out prompts (27/48 on
//   an AMD EPYC with the single-seed recipe, 38/48 for the best of four here); for a rate of 0.56,
//   12 queries give 3 or fewer usable with probability ≈ 0.02 (binomial);
// - parsed answers ≥ 2/3: a candidate can loop (one of four here ran out of turns on 23 of 96
//   validation videos), and that is a policy's weakness, not the pipeline's;
// - mean J&F of the usable answers > 0.18: the pointer policies score 0.25–0.36, the policy before
//   the pointer 0.167 (it wrote boxes in the wrong place).
const NANO_MIN_OK = 1 / 3;
const NANO_MIN_PARSED = 2 / 3;
const NANO_MIN_JF = 0.18;

async function pool<T, R>(items: T[], n: number, f: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await f(items[i]!);
      }
    }),
  );
  return out;
}

test(
  'policy end to end: segmentQuery with the SFT nano policy on held-out nano videos (format, corpus searches, masks, J&F)',
  { timeout: 600_000 },
  async () => {
    assert.ok(
      existsSync(join(policyDir, 'model.safetensors')) && existsSync(nanoPython),
      `${policyDir} is missing: run bash scripts/nano-setup.sh (make deps-nano) first`,
    );
    const t0 = Date.now();
    const server = await startNanoPolicyServer(policyDir);
    console.log(`nano policy server up in ${((Date.now() - t0) / 1000).toFixed(1)}s at ${server.url}`);
    const config = testConfig();
    const client = await testClient(config);
    const store = testStore(config);
    // Evaluation decoding (spec: evaluation uses temperature 0), through the worker's config file.
    const cfgFile = join(mkdtempSync(join(tmpdir(), 'nano-cfg-')), 'segflow.config.yaml');
    writeFileSync(cfgFile, JSON.stringify({ policy: { temperature: 0 } }));
    const worker = await startWorkerProcess([], {
      SEGFLOW_CONFIG: cfgFile,
      SEGFLOW_POLICY_URL: server.url,
      // the nano policy server loads each full version by name
      SEGFLOW_POLICY_FULL_WEIGHT_SYNC: 'by-name',
      SEGFLOW_POLICY_MODEL: 'nano-policy',
      SEGFLOW_POLICY_MAX_MODEL_LEN: '640',
      SEGFLOW_SEGMENT_MODELS_DIR: modelsDir,
      SEGFLOW_SEARCH_CORPUS: join(dataDir, 'corpus.jsonl'),
      SEGFLOW_SEARCH_BACKEND: 'local',
      SEGFLOW_SEARCH_CACHE: 'false',
    });
    const tmp = mkdtempSync(join(tmpdir(), 'nano-e2e-'));
    try {
      const meta = JSON.parse(readFileSync(join(dataDir, 'meta.json'), 'utf8')) as {
        splits: { test: QuerySample[] };
      };
      const byAbility = new Map<string, QuerySample[]>();
      for (const s of meta.splits.test) byAbility.set(s.ability, [...(byAbility.get(s.ability) ?? []), s]);
      const picked = [...byAbility.values()].flatMap((v) =>
        v.slice(0, Number(process.env.NANO_E2E_PER_ABILITY ?? 3)),
      );
      const titles = new Set(
        readFileSync(join(dataDir, 'corpus.jsonl'), 'utf8')
          .trim()
          .split('\n')
          .map((l) => (JSON.parse(l) as { contents: string }).contents.split('\n')[0]!.toLowerCase()),
      );
      const t1 = Date.now();
      const rows = await pool(picked, 3, async (s) => {
        const r = (await client.workflow.execute('segmentQuery', {
          taskQueue: TaskQueues.orchestrator,
          workflowId: uniqueId(`it-nano-${s.id}`),
          args: [{ media: join(dataDir, 'test', 'JPEGImages', s.video), query: s.query, frames: 6 }],
          workflowExecutionTimeout: '5 minutes',
        })) as SegmentQueryResult;
        const traj = await store.getJson<Trajectory>(r.rollout.trajectory.uri);
        // search observations: the nano corpus answered with its own passages
        const hits = traj.turns
          .map((t) => t.observation?.content ?? '')
          .flatMap((c) => [...c.matchAll(/\(Title: ([^)]*)\)/g)].map((m) => m[1]!.toLowerCase()));
        let jf: number | undefined;
        if (r.masks) {
          const manifest = await store.getJson<{ frames: { frame: number; mask: string }[] }>(r.masks.uri);
          const dir = join(tmp, s.id);
          mkdirSync(dir, { recursive: true });
          // mask names are frame content hashes; `frame` is the index in the folder's sorted order
          for (const f of manifest.frames)
            await store.downloadToFile(f.mask, join(dir, `${String(f.frame).padStart(5, '0')}.png`));
          assert.equal(manifest.frames.length, 10, `${s.id}: a mask for each of the 10 frames`);
          jf = (await evalMaskFolders(dir, join(dataDir, 'test', 'Annotations', s.video, s.oid))).JF;
        }
        if (r.answer.status !== 'ok' && process.env.NANO_E2E_DEBUG)
          console.log(`--- ${s.id} ${r.answer.status}\n${traj.responseText}\n---`);
        // every assistant turn is a protocol turn: thinking, then one action
        const turnRe =
          /^<thinking>[^<>]*<\/thinking>\n(<search> \{"name": "text_search", "query": "[^"]*"\} <\/search>|<keyframe> \d+ <\/keyframe>|<answer> \{"bbox_2d": \[\d+, \d+, \d+, \d+\], "point_2d": \[\d+, \d+\]\} <\/answer>)$/;
        // (a turn the context length cut off is unfinished, not off-protocol: the grammar leaves
        // the model no other way to break the format)
        const formatOk = traj.turns.every((t) => t.finishReason === 'length' || turnRe.test(t.text));
        return { s, r, hits, jf, formatOk, turns: traj.turns.length };
      });
      const secs = (Date.now() - t1) / 1000;
      const ok = rows.filter((x) => x.r.answer.status === 'ok');
      const searched = rows.filter((x) => x.r.rollout.numSearch > 0);
      const jfs = rows.map((x) => x.jf ?? 0);
      const meanJF = jfs.reduce((a, b) => a + b, 0) / jfs.length;
      for (const x of rows) {
        console.log(
          `  ${x.s.id} ${x.s.ability.padEnd(10)} ${x.r.answer.status.padEnd(14)} searches ${x.r.rollout.numSearch} ` +
            `[${x.r.searchLog.map((q) => q.query).join(' | ')}] J&F ${x.jf === undefined ? '-' : x.jf.toFixed(3)}`,
        );
      }
      console.log(
        `nano policy e2e: ${rows.length} queries in ${secs.toFixed(0)}s; answer ok ${ok.length}/${rows.length}; ` +
          `searched ${searched.length}; mean J&F ${meanJF.toFixed(3)} (0 for failed answers)`,
      );
      const formatValid = rows.filter((x) => x.formatOk).length;
      const parsed = rows.filter((x) => !['no_answer', 'no_keyframe'].includes(x.r.answer.status));
      const okJF = ok.map((x) => x.jf ?? 0);
      const meanOkJF = okJF.length ? okJF.reduce((a, b) => a + b, 0) / okJF.length : 0;
      console.log(
        `nano policy e2e: format-valid trajectories ${formatValid}/${rows.length}; answers parsed ${parsed.length}/${rows.length}; ` +
          `statuses ${JSON.stringify(Object.fromEntries([...new Set(rows.map((x) => x.r.answer.status))].map((k) => [k, rows.filter((x) => x.r.answer.status === k).length])))}; ` +
          `mean J&F of ok answers ${meanOkJF.toFixed(3)}`,
      );
      assert.equal(formatValid, rows.length, 'every turn follows the protocol');
      assert.ok(
        parsed.length >= Math.ceil(rows.length * NANO_MIN_PARSED),
        `only ${parsed.length}/${rows.length} rollouts end in a parsed keyframe and answer`,
      );
      assert.ok(
        ok.length >= Math.ceil(rows.length * NANO_MIN_OK),
        `only ${ok.length}/${rows.length} answers usable`,
      );
      for (const x of searched) {
        assert.ok(
          x.r.searchLog.every((q) => q.backend === 'local'),
          `${x.s.id}: searches go to the local backend`,
        );
        assert.ok(
          x.hits.every((t) => titles.has(t)),
          `${x.s.id}: hits are nano corpus passages: ${x.hits.join(', ')}`,
        );
      }
      const withHits = searched.filter((x) => x.hits.length > 0).length;
      assert.ok(
        withHits >= Math.ceil(searched.length * 0.75),
        `only ${withHits}/${searched.length} searching rollouts got corpus hits`,
      );
      const searchAbilities = rows.filter((x) => x.s.ability !== 'in-video');
      assert.ok(
        searched.filter((x) => x.s.ability !== 'in-video').length >= Math.ceil(searchAbilities.length * 0.75),
        'the policy searches on most search-ability queries',
      );
      for (const x of ok) assert.ok(x.r.masks, `${x.s.id}: an ok answer has masks`);
      // Above what an empty or wrong-place mask scores (≈0): the policy looks at the frames.
      assert.ok(meanOkJF > NANO_MIN_JF, `mean J&F of ok answers ${meanOkJF.toFixed(3)} ≤ ${NANO_MIN_JF}`);
    } finally {
      worker.child.kill('SIGTERM');
      await worker.exited;
      server.child.kill('SIGTERM');
      store.client.destroy();
      await client.connection.close();
    }
  },
);
