// The evaluation activities on the real dev S3, with datasets prepared here: planning marks stored
// scores done (not stored infrastructure failures, not scores of another generation) and refuses a
// re-run with other settings unless fresh, scoring writes one deterministic object per sample (a retry rewrites it) with the
// trajectory's outcome reward, the aggregate means it and refuses missing results, and every bad input fails non-retryably, naming the input.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { prepareDataset, type PreparedSample } from '../../../activities/datasets/prepare.js';
import { readReasonSeg } from '../../../activities/datasets/reasonseg.js';
import {
  createEvaluationActivities,
  type EvalPlan,
  type EvalPlanInput,
  type EvalScoreInput,
} from '../../../activities/evaluation/activities.js';
import {
  EvalKeys,
  type EvaluationFingerprint,
  type EvaluationRecord,
  type SampleEvaluation,
  type StoredSample,
} from '../../../core/contracts/index.js';
import { encodeMaskPng, maskSequenceLookup, type MaskSequence } from '../../../activities/media/masks.js';
import { ArtifactStore } from '../../../activities/storage/artifact-store.js';
import type { ArtifactRef } from '../../../core/artifacts.js';
import type { RolloutSummary } from '../../../core/contracts/rollout.js';
import { activityEnvironment, throughWorkerInterceptors } from '../../support/activity-env.js';
import { testConfig, uniqueId } from '../../support/stack.js';
import { writeReasonSeg } from './fixtures.js';

const config = testConfig();
const store = ArtifactStore.fromConfig({ ...config.s3, prefix: uniqueId('eval-activities') });
const acts = throughWorkerInterceptors(
  createEvaluationActivities({ store, now: () => new Date('2026-01-01T00:00:00Z') }),
);
const env = activityEnvironment();
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

/** A rollout's summary as evaluateSample passes it, with a stored trajectory. */
async function storedRollout(): Promise<RolloutSummary> {
  const trajectory = await store.putJson('junk/trajectory.json', {
    responseText: '<thinking> look </thinking>\n<answer> {"bbox_2d": [1, 2, 3, 4]} </answer>',
  });
  return { ...rollout, trajectory };
}
const rollout: RolloutSummary = {
  trajectoryId: 'ev/sample-x/rollout',
  stopReason: 'model_chose_to_finish',
  answer: { status: 'ok', keyframe: 0, box: [1, 2, 3, 4], point: null, problems: [] },
  turns: 3,
  numSearch: 1,
  promptTokens: 100,
  completionTokens: 20,
  policyVersion: 2,
  searches: [{ tool: 'text_search', query: 'q', backend: 'local', cached: false }],
  trajectory: {
    uri: 's3://unset/trajectory.json',
    sha256: '0'.repeat(64),
    bytes: 2,
    contentType: 'application/json',
  },
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
  await acts.evalScoreSample(scoreInputFor(evalId, 1, {}));
  const p3 = await acts.evalPlan({ evalId, dataset: index.uri, offset: 0, pageSize: 10 });
  assert.deepEqual(
    p3.samples.map((s) => s.done),
    [false, true, false],
  );
});

/** A no-prediction score input for records[i] (or, with `failure`, an infrastructure failure). */
function scoreInputFor(evalId: string, i: number, extra: Partial<EvalScoreInput>): EvalScoreInput {
  return {
    evalId,
    sampleId: records[i]!.id,
    record: records[i]!.ref,
    prediction: { kind: 'none' },
    keyframeIndex: null,
    rollout: null,
    requestedPolicyVersion: 1,
    error: null,
    ...extra,
  };
}

const fingerprint = (version: number, backend = 'serper'): EvaluationFingerprint => ({
  dataset: 'd',
  policy: { model: 'policy', version },
  sampling: { temperature: 0 },
  systemPrompts: null,
  coordinates: null,
  search: { backend },
  settings: null,
  modelsDir: null,
  segmentation: null,
});

test('evalPlan: a stored infrastructure failure is not done; another fingerprint is refused naming what differs; fresh starts a new generation', async () => {
  const evalId = uniqueId('plan-fp');
  const plan = (extra: Partial<EvalPlanInput>) =>
    acts.evalPlan({ evalId, dataset: index.uri, offset: 0, pageSize: 10, ...extra });
  const first = await plan({ fingerprint: fingerprint(1) });
  assert.equal(first.generation, 'initial');
  assert.equal(
    (await store.getJson<EvaluationRecord>(EvalKeys.record(evalId))).fingerprint.policy.version,
    1,
  );
  await acts.evalScoreSample(scoreInputFor(evalId, 0, { generation: 'initial' }));
  const failed = await acts.evalScoreSample(
    scoreInputFor(evalId, 1, {
      generation: 'initial',
      error: 'policy chat completion was rate limited or unavailable (HTTP 503 from …)',
      failure: { type: 'TransientError', message: 'policy … (HTTP 503 from …)' },
    }),
  );
  assert.equal(failed.failed, true);
  assert.equal(failed.JF, null);
  const stored = await store.getJson<StoredSample>(failed.result.uri);
  assert.equal(stored.schema, 'segflow.eval-sample-failed/1');
  const again = await plan({ fingerprint: fingerprint(1) });
  assert.deepEqual(
    again.samples.map((s) => [s.id, s.done, s.retry ?? false]),
    [
      ['img_a', true, false],
      ['img_b', false, true],
      ['img_c', false, false],
    ],
  );

  await rejectsBadInput(
    plan({ fingerprint: fingerprint(2, 'local') }),
    new RegExp(
      `evaluation ${evalId} already holds results made with other settings \\(policy\\.version: 1 → 2; search\\.backend: "serper" → "local"\\).*--fresh`,
    ),
  );
  // Fresh: a new generation, idempotent for a retry or the next page of the same start.
  const fresh = await plan({ fingerprint: fingerprint(2), freshGeneration: 'run-2' });
  const retried = await plan({ fingerprint: fingerprint(2), freshGeneration: 'run-2' });
  assert.equal(fresh.generation, 'run-2');
  assert.deepEqual(retried, fresh);
  assert.deepEqual(
    fresh.samples.map((s) => s.done),
    [false, false, false],
    'the first generation is evaluated again',
  );
  await acts.evalScoreSample(scoreInputFor(evalId, 2, { generation: 'run-2' }));
  assert.deepEqual(
    (await plan({ fingerprint: fingerprint(2) })).samples.map((s) => s.done),
    [false, false, true],
  );
  await rejectsBadInput(plan({ fingerprint: fingerprint(1) }), /policy\.version: 2 → 1/);
});

test('evalAggregate leaves infrastructure failures out of every metric, counts and lists them', async () => {
  const evalId = uniqueId('agg-failed');
  await acts.evalScoreSample(scoreInputFor(evalId, 0, {}));
  await acts.evalScoreSample(scoreInputFor(evalId, 1, { error: 'keyframe 9 is not a frame of the video' }));
  await acts.evalScoreSample(
    scoreInputFor(evalId, 2, { failure: { type: 'Timeout(HEARTBEAT)', message: 'activity timed out' } }),
  );
  const { metrics } = await acts.evalAggregate({
    evalId,
    dataset: index.uri,
    policy: { model: null, version: 1 },
    paid: { total: 0, byBackend: {} },
  });
  assert.equal(metrics.samples.expected, 3);
  assert.equal(metrics.samples.scored, 2);
  assert.equal(metrics.samples.errors, 1, 'a legitimate failure is scored, with its error');
  assert.equal(metrics.samples.failed, 1);
  assert.deepEqual(
    metrics.samples.failedSamples?.map((f) => [f.sampleId, f.type, f.message]),
    [['img_c', 'Timeout(HEARTBEAT)', 'activity timed out']],
  );
  assert.equal(metrics.reasonSeg!.lisa.counted, 2, 'only the two scored samples are in gIoU');
  assert.equal(metrics.reasonSeg!.lisa.gIoU, 0, 'no prediction: IoU 0 each');
  const report = await acts.evalReport({ evalId, gallery: 0 });
  const html = (await store.getBytes(report.html.uri)).toString('utf8');
  assert.match(
    html,
    /1 sample failed for an infrastructure reason after its retries and is left out of the metrics: img_c \(Timeout\(HEARTBEAT\)\)/,
  );
  assert.match(html, /<table id="failed-table">/);
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
    rollout: await storedRollout(),
    requestedPolicyVersion: 2,
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

test('evalScoreSample: the outcome reward of the trajectory, gated by the answer status; null without a trajectory or ground truth', async () => {
  const evalId = uniqueId('reward');
  const rec = records[0]!;
  const record = await store.getJson<PreparedSample>(rec.ref.uri);
  const [frameId, gt] = Object.entries(record.groundTruth)[0]!;
  const trajectory = async (name: string, answer: object) =>
    store.putJson(`trajectories/${name}.json`, {
      responseText: `<thinking> the shape </thinking>\n<keyframe> ${frameId} </keyframe>user\nHere is the high-res version of your selected frame: \n<thinking> locate </thinking>\n<answer> ${JSON.stringify(answer)} </answer>`,
    });
  const exact = await trajectory('exact', { bbox_2d: gt.bbox_2d, point_2d: gt.point_2d });
  // Same box, point 300 units away along x (the answer check does not care): R_point 0.
  const farPoint = await trajectory('far-point', {
    bbox_2d: gt.bbox_2d,
    point_2d: [gt.point_2d[0]! + 300, gt.point_2d[1]],
  });
  const score = async (
    sampleId: string,
    over: { trajectory: ArtifactRef | null; answerStatus?: RolloutSummary['answer']['status'] },
    recordRef = rec.ref,
  ) => {
    const { result } = await acts.evalScoreSample({
      evalId,
      sampleId,
      record: recordRef,
      prediction: { kind: 'none' },
      keyframeIndex: 0,
      // A failed rollout (no trajectory) reaches scoring as no summary at all.
      rollout:
        over.trajectory === null
          ? null
          : {
              ...rollout,
              trajectory: over.trajectory,
              answer: { ...rollout.answer, status: over.answerStatus ?? 'ok' },
            },
      requestedPolicyVersion: 2,
      error: null,
    });
    return (await store.getJson<SampleEvaluation>(result.uri)).reward;
  };
  // One frame, one connected component: R_frame = max_conn_area = 1.
  assert.equal(gt.max_conn_area, 1);
  // The answer box is the ground-truth box on an annotated frame: R_iou 1, R_box 1, R_point 1.
  assert.deepEqual(await score('exact', { trajectory: exact }), {
    outcome: 4,
    iou: 1,
    box: 1,
    point: 1,
    frame: 1,
    format: 1,
  });
  assert.deepEqual(await score('far-point', { trajectory: farPoint }), {
    outcome: 3,
    iou: 1,
    box: 1,
    point: 0,
    frame: 1,
    format: 1,
  });
  // An answer the rollout could not use: segflow's gate zeroes the outcome (F stays).
  assert.deepEqual(await score('gated', { trajectory: exact, answerStatus: 'degenerate_box' }), {
    outcome: 0,
    iou: 0,
    box: 0,
    point: 0,
    frame: 0,
    format: 1,
  });
  // The rollout failed: no trajectory, no reward.
  assert.equal(await score('failed', { trajectory: null }), null);
  // A record without ground truth (prepared by an older version) does not fail the evaluation.
  const { groundTruth: _gt, ...withoutGt } = record;
  const noGt = await store.putJson('junk/no-ground-truth.json', withoutGt);
  assert.equal(await score('no-gt', { trajectory: exact }, noGt), null);

  // The aggregate means the rewards over the samples that have one, and the pointer carries the mean.
  const dataset = await store.putJson('junk/reward-index.json', {
    ...(await store.getJson<object>(index.uri)),
    samples: ['exact', 'far-point', 'gated', 'failed', 'no-gt'].map((id) => ({
      id,
      ability: null,
      ref: rec.ref,
    })),
  });
  const { metrics } = await acts.evalAggregate({
    evalId,
    dataset: dataset.uri,
    policy: { model: null, version: 1 },
    paid: { total: 0, byBackend: {} },
  });
  assert.deepEqual(metrics.reward, {
    samples: 3,
    outcome: 7 / 3,
    iou: 2 / 3,
    box: 2 / 3,
    point: 1 / 3,
    frame: 2 / 3,
    format: 1,
    perAbility: { [record.ability ?? 'unknown']: { samples: 3, outcome: 7 / 3 } },
  });
  const pointers: { outcome?: number | null }[] = [];
  for await (const o of store.list('evals/by-dataset/')) {
    if (o.key.endsWith(`/${evalId}.json`)) pointers.push(await store.getJson(o.key));
  }
  assert.deepEqual(
    pointers.map((p) => p.outcome),
    [7 / 3],
  );
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
      rollout: await storedRollout(),
      requestedPolicyVersion: 2,
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
