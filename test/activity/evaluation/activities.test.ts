// The evaluation activities on the real dev S3, with datasets prepared here: planning marks stored
// samples done, scoring writes one deterministic object per sample (a retry rewrites it), the
// aggregate refuses missing results, and every bad input fails non-retryably, naming the input.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { prepareDataset, type PreparedSample } from '../../../activities/datasets/prepare.js';
import { readReasonSeg } from '../../../activities/datasets/reasonseg.js';
import {
  createEvaluationActivities,
  type EvalPlan,
  type EvalPlanInput,
  type EvalScoreInput,
} from '../../../activities/evaluation/activities.js';
import { EvalKeys } from '../../../activities/evaluation/results.js';
import { encodeMaskPng, maskSequenceLookup, type MaskSequence } from '../../../activities/media/masks.js';
import { ArtifactStore } from '../../../activities/storage/artifact-store.js';
import type { ArtifactRef } from '../../../core/artifacts.js';
import { testConfig, uniqueId } from '../../support/stack.js';
import { writeReasonSeg } from './fixtures.js';

const config = testConfig();
const store = ArtifactStore.fromConfig({ ...config.s3, prefix: uniqueId('eval-activities') });
const acts = createEvaluationActivities({ store, now: () => new Date('2026-01-01T00:00:00Z') });
const env = new MockActivityEnvironment();
const tmp = mkdtempSync(join(tmpdir(), 'segflow-eval-act-'));
let index: ArtifactRef;
let records: { id: string; ref: ArtifactRef }[];
type Scored = Awaited<ReturnType<typeof acts.evalScoreSample>>;
after(() => store.client.destroy());

before(async () => {
  const dir = await writeReasonSeg(join(tmp, 'val'));
  index = (
    await prepareDataset(store, await readReasonSeg(dir), { format: 'reasonseg', split: 'val', source: dir })
  ).index;
  records = (await store.getJson<{ samples: { id: string; ref: ArtifactRef }[] }>(index.uri)).samples;
});

/** Asserts a non-retryable BadInputError whose message matches. */
async function rejectsBadInput(p: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ApplicationFailure, String(e));
    assert.equal(e.type, 'BadInputError');
    assert.equal(e.nonRetryable, true);
    assert.match(e.message, message);
    return true;
  });
}

const rollout = {
  answerStatus: 'ok',
  stopReason: 'model_chose_to_finish',
  turns: 3,
  promptTokens: 100,
  completionTokens: 20,
  policyVersion: 2,
  searches: [{ tool: 'text_search', query: 'q', backend: 'local', cached: false }],
  keyframe: 0,
  box: [1, 2, 3, 4],
  trajectory: null,
};

test('evalPlan pages the index, honours limit, and marks samples whose result is stored as done', async () => {
  const evalId = uniqueId('plan');
  const p1 = await env.run<[EvalPlanInput], EvalPlan, typeof acts.evalPlan>(acts.evalPlan, {
    evalId,
    dataset: index.uri,
    offset: 0,
    pageSize: 2,
  });
  assert.equal(p1.total, 3);
  assert.deepEqual(
    p1.samples.map((s) => [s.id, s.done]),
    [
      ['img_a', false],
      ['img_b', false],
    ],
  );
  const p2 = await acts.evalPlan({ evalId, dataset: index.uri, offset: 2, pageSize: 2, limit: 2 });
  assert.equal(p2.total, 2);
  assert.equal(p2.samples.length, 0);
  await store.putJson(EvalKeys.sampleResult(evalId, 'img_b'), { stored: true });
  const p3 = await acts.evalPlan({ evalId, dataset: index.uri, offset: 0, pageSize: 10 });
  assert.deepEqual(
    p3.samples.map((s) => s.done),
    [false, true, false],
  );
});

test('evalScoreSample: the ground truth itself scores 1; a retry rewrites the same single object', async () => {
  const evalId = uniqueId('score');
  const rec = records[0]!;
  const record = await store.getJson<PreparedSample>(rec.ref.uri);
  const gt = maskSequenceLookup(await store.getJson<MaskSequence>(record.masks!.uri))(0)!;
  const mask = await store.putBytes(`preds/${rec.id}.png`, await encodeMaskPng(gt), 'image/png');
  const input = {
    evalId,
    sampleId: rec.id,
    record: rec.ref,
    prediction: { kind: 'image' as const, mask },
    keyframeIndex: 0,
    rollout,
    error: null,
  };
  // Through the mock activity context (heartbeats go somewhere), then again as a retry would.
  const a = await env.run<[EvalScoreInput], Scored, typeof acts.evalScoreSample>(acts.evalScoreSample, input);
  const b = await acts.evalScoreSample(input);
  assert.equal(a.JF, 1);
  assert.equal(a.iou, 1);
  assert.equal(a.result.sha256, b.result.sha256, 'same bytes at the same key');
  const keys: string[] = [];
  for await (const o of store.list(EvalKeys.samplesPrefix(evalId))) keys.push(o.key);
  assert.deepEqual(keys.sort(), [
    EvalKeys.sampleResult(evalId, rec.id),
    `${EvalKeys.samplePrefix(evalId, rec.id)}/overlay.jpg`,
  ]);
  const stored = await store.getJson<{ overlay: ArtifactRef; searches: unknown[] }>(a.result.uri);
  assert.equal(stored.overlay.contentType, 'image/jpeg');
  assert.equal(stored.searches.length, 1);

  // No prediction: I = 0, U = |GT| (the Seg-Zero penalty for an unparseable answer).
  const none = await acts.evalScoreSample({ ...input, sampleId: 'none', prediction: { kind: 'none' } });
  assert.equal(none.iou, 0);
});

test('evalAggregate refuses to aggregate while a sample has no stored result, naming it', async () => {
  const evalId = uniqueId('agg');
  await rejectsBadInput(
    acts.evalAggregate({
      evalId,
      dataset: index.uri,
      policy: { model: null, version: null },
      paid: { total: 0, byBackend: {} },
    }),
    /has no stored result for 3 sample\(s\): img_a, img_b, img_c/,
  );
});

test('bad input fails non-retryably and names the input', async () => {
  const notIndex = await store.putJson('junk/not-an-index.json', { hello: 'world' });
  await rejectsBadInput(
    acts.evalPlan({ evalId: 'e1', dataset: notIndex.uri, offset: 0, pageSize: 5 }),
    /not-an-index\.json is not a prepared dataset index .*segr dataset prepare/,
  );
  await rejectsBadInput(
    acts.evalPlan({ evalId: 'e1', dataset: store.uriOf('junk/missing.json'), offset: 0, pageSize: 5 }),
    /dataset index s3:\/\/.*junk\/missing\.json does not exist/,
  );
  await rejectsBadInput(
    acts.evalPlan({ evalId: 'bad id/with slash', dataset: index.uri, offset: 0, pageSize: 5 }),
    /evalPlan input is invalid: evalId/,
  );
  const rec = await store.getJson<PreparedSample>(records[0]!.ref.uri);
  const noMasks = await store.putJson('junk/no-masks.json', { ...rec, masks: null });
  await rejectsBadInput(
    acts.evalLoadSample({ record: noMasks }),
    /sample img_a \(.*img_a\.json\) has no ground-truth masks/,
  );
  // A prediction of the wrong size.
  const small = await store.putBytes(
    'junk/small.png',
    await encodeMaskPng({ width: 8, height: 8, data: new Uint8Array(64) }),
    'image/png',
  );
  await rejectsBadInput(
    acts.evalScoreSample({
      evalId: 'e1',
      sampleId: 'img_a',
      record: records[0]!.ref,
      prediction: { kind: 'image', mask: small },
      keyframeIndex: 0,
      rollout,
      error: null,
    }),
    /sample img_a: the predicted mask of frame 0 is 8×8 but its ground truth is 64×48/,
  );
  const pointer = await store.putJson('junk/pointer.json', { version: 'seven' });
  await rejectsBadInput(
    acts.evalResolvePolicy({ latestFrom: pointer.uri }),
    /policy pointer .*pointer\.json is not \{version, model\?\}: version/,
  );
  const good = await store.putJson('junk/good-pointer.json', { version: 7, model: 'lora-7', step: 70 });
  assert.deepEqual(await acts.evalResolvePolicy({ latestFrom: good.uri }), { version: 7, model: 'lora-7' });
});
