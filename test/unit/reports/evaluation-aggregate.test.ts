// Scoring and aggregation of an evaluation: per-frame J/F from core/metrics, per-query means over
// all annotated frames, per-ability J&F with every query weighted equally, gIoU/cIoU under each
// empty-union convention, search and stop-reason counts, the mean outcome reward (and the CLI's line
// for it); infrastructure failures left out of the metrics, counted and listed; plus the
// workflow/activity key agreement.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  aggregateEvaluation,
  failedSamplesLine,
  scoreFrames,
} from '../../../activities/evaluation/aggregate.js';
import {
  sampleEvaluationSchema,
  storedSampleSchema,
  type FailedSample,
  type SampleEvaluation,
} from '../../../core/contracts/index.js';
import { evaluationInputFrom, outcomeRewardLine } from '../../../cli/commands/eval.js';
import { evaluateFrame } from '../../../core/metrics/davis.js';
import { maskFrom } from '../../../core/metrics/mask.js';

const W = 40;
const H = 30;
const rect = (x0: number, y0: number, x1: number, y1: number) =>
  maskFrom(W, H, (x, y) => x >= x0 && x <= x1 && y >= y0 && y <= y1);
const ref = { uri: 's3://segflow/x.json', sha256: 'a'.repeat(64), bytes: 1, contentType: 'application/json' };

function sample(
  id: string,
  over: Partial<SampleEvaluation> & Pick<SampleEvaluation, 'kind' | 'ability'>,
): SampleEvaluation {
  return {
    schema: 'segflow.eval-sample/1',
    evalId: 'e',
    sampleId: id,
    format: over.kind === 'video' ? 'okvos' : 'reasonseg',
    question: `q ${id}`,
    frames: [],
    J: 0,
    F: 0,
    JF: 0,
    intersection: 0,
    union: 0,
    gtArea: 0,
    predArea: 0,
    answerStatus: 'ok',
    stopReason: 'model_chose_to_finish',
    error: null,
    turns: 3,
    promptTokens: 100,
    completionTokens: 10,
    policyVersion: 0,
    searches: [],
    keyframe: 0,
    box: null,
    record: ref,
    trajectory: null,
    prediction: null,
    overlay: null,
    overlayFrame: null,
    ...over,
  };
}

const ctx = {
  evalId: 'e',
  dataset: { uri: 's3://segflow/d.json', format: 'okvos', split: 'test', samples: 5 },
  policy: { model: 'policy', version: 3 },
  expected: 5,
  paid: { total: 0, byBackend: {} },
};

test('scoreFrames: J/F of every annotated frame from core/metrics, a missing prediction is empty, means over frames', () => {
  const gt = [
    { index: 0, mask: rect(5, 5, 15, 15) },
    { index: 3, mask: rect(10, 10, 20, 20) },
    { index: 7, mask: rect(0, 0, -1, -1) }, // annotated, target absent
  ];
  const preds = new Map([[0, rect(6, 5, 16, 15)]]);
  const s = scoreFrames(gt, (i) => preds.get(i));
  const f0 = evaluateFrame(rect(6, 5, 16, 15), gt[0]!.mask);
  const f3 = evaluateFrame(rect(0, 0, -1, -1), gt[1]!.mask);
  assert.deepEqual(
    s.frames.map((f) => f.index),
    [0, 3, 7],
  );
  assert.equal(s.frames[0]!.J, f0.J);
  assert.equal(s.frames[1]!.J, 0, 'empty prediction on a visible target: J = 0');
  assert.equal(s.frames[1]!.F, f3.F);
  assert.equal(s.frames[2]!.J, 1, 'empty prediction on an empty ground truth: J = 1 (DAVIS)');
  assert.equal(s.frames[2]!.F, 1);
  assert.ok(Math.abs(s.J - (f0.J + 0 + 1) / 3) < 1e-15);
  assert.equal(s.JF, (s.J + s.F) / 2);
  assert.equal(s.intersection, 10 * 11);
  assert.equal(s.union, 12 * 11 + 11 * 11);
});

test('scoreFrames: ignore pixels leave intersection and union (LISA), a size mismatch is an error', () => {
  const gt = [{ index: 0, mask: rect(0, 0, 9, 9) }];
  const ignore = rect(0, 0, 4, 9);
  const s = scoreFrames(gt, () => rect(0, 0, 9, 4), ignore);
  assert.equal(s.intersection, 5 * 5);
  assert.equal(s.union, 5 * 10);
  assert.throws(
    () => scoreFrames(gt, () => maskFrom(W + 1, H, () => false)),
    /41×30 but its ground truth is 40×30/,
  );
  assert.throws(() => scoreFrames([], () => undefined), /at least one annotated frame/);
});

test('aggregate: per-ability and overall J, F, J&F weight each query equally; in-video is tabulated and in the overall', () => {
  const samples = [
    sample('a', { kind: 'video', ability: 'one-hop', J: 0.8, F: 0.6 }),
    sample('b', { kind: 'video', ability: 'one-hop', J: 0.4, F: 0.2 }),
    sample('c', { kind: 'video', ability: 'multi-hop', J: 1, F: 1 }),
    sample('d', { kind: 'video', ability: 'in-video', J: 0, F: 0.5 }),
  ];
  const m = aggregateEvaluation(samples, ctx);
  assert.ok(m.vos);
  assert.ok(Math.abs(m.vos.perAbility['one-hop']!.J - 0.6) < 1e-12);
  assert.ok(Math.abs(m.vos.perAbility['one-hop']!.JF - 0.5) < 1e-12);
  assert.equal(m.vos.perAbility['multi-hop']!.JF, 1);
  assert.ok(Number.isNaN(m.vos.perAbility['relational']!.JF), 'no relational query: NaN, shown as n/a');
  assert.equal(m.vos.perAbility['in-video']!.count, 1);
  assert.ok(Math.abs(m.vos.overall.J - 2.2 / 4) < 1e-12);
  assert.ok(Math.abs(m.vos.overall.F - 2.3 / 4) < 1e-12);
  assert.ok(Math.abs(m.vos.overall.JF - 4.5 / 8) < 1e-12);
  assert.equal(m.reasonSeg, null);
  assert.equal(m.samples.scored, 4);
  assert.equal(m.samples.expected, 5);
});

test('aggregate: gIoU/cIoU under LISA (U=0 → 1), Seg-Zero (U=0 → 0) and skip; a parse failure counts I=0, U=|GT|', () => {
  const samples = [
    sample('r1', { kind: 'image', ability: 'unknown', intersection: 50, union: 100 }),
    sample('r2', { kind: 'image', ability: 'unknown', intersection: 0, union: 0 }), // empty GT, empty prediction
    sample('r3', {
      kind: 'image',
      ability: 'unknown',
      intersection: 0,
      union: 40,
      answerStatus: 'no_answer',
    }),
  ];
  const m = aggregateEvaluation(samples, ctx);
  assert.ok(m.reasonSeg);
  assert.ok(Math.abs(m.reasonSeg.lisa.gIoU - (0.5 / (1 + 1e-7) + 1 + 0) / 3) < 1e-9);
  assert.equal(m.reasonSeg.segzero.gIoU, 0.5 / 3);
  assert.equal(m.reasonSeg.skip.gIoU, 0.25);
  assert.equal(m.reasonSeg.skip.skipped, 1);
  assert.equal(m.reasonSeg.segzero.cIoU, 50 / 140);
  assert.equal(m.vos, null);
});

test('aggregate: searches, paid calls and cost, stop reasons, answer statuses, errors', () => {
  const s1 = { tool: 'text_search', query: 'x', backend: 'serper', cached: false };
  const s2 = { tool: 'image_search', query: 'y', backend: 'serper', cached: true };
  const samples = [
    sample('a', { kind: 'video', ability: 'one-hop', searches: [s1, s2] }),
    sample('b', {
      kind: 'video',
      ability: 'one-hop',
      searches: [s1],
      stopReason: 'max_turns_reached',
      answerStatus: 'no_answer',
    }),
    sample('c', { kind: 'video', ability: 'relational', error: 'segment failed' }),
  ];
  const m = aggregateEvaluation(samples, {
    ...ctx,
    paid: { total: 2, byBackend: { serper: 2 } },
    prices: { serper: 0.001 },
  });
  assert.equal(m.search.calls, 3);
  assert.equal(m.search.cached, 1);
  assert.equal(m.search.distinctQueries, 2);
  assert.deepEqual(m.search.byTool, { image_search: 1, text_search: 2 });
  assert.equal(m.search.perSample, 1);
  assert.equal(m.search.paidCalls, 2);
  assert.equal(m.search.costUsd, 0.002);
  assert.deepEqual(m.stopReasons, { max_turns_reached: 1, model_chose_to_finish: 2 });
  assert.deepEqual(m.answerStatus, { no_answer: 1, ok: 2 });
  assert.equal(m.samples.errors, 1);
  assert.equal(aggregateEvaluation(samples, ctx).search.costUsd, null, 'no prices: no cost');
  assert.throws(() => aggregateEvaluation([samples[0]!, samples[0]!], ctx), /sample a appears twice/);
});

test('aggregate: outcome reward means over the samples that have one, overall and per ability; null when none has one', () => {
  const r = (outcome: number, iou: number, box: number, point: number, frame: number, format = 1) => ({
    outcome,
    iou,
    box,
    point,
    frame,
    format,
  });
  const samples = [
    sample('a', { kind: 'video', ability: 'one-hop', reward: r(3.5, 1, 1, 1, 0.5) }),
    sample('b', { kind: 'video', ability: 'one-hop', reward: r(1.25, 1, 0, 0, 0.25) }),
    sample('c', {
      kind: 'video',
      ability: 'multi-hop',
      reward: r(0, 0, 0, 0, 0, 0),
      answerStatus: 'no_answer',
    }),
    // No trajectory (rollout failed): no reward, left out of the means.
    sample('d', { kind: 'video', ability: 'multi-hop', reward: null, answerStatus: 'rollout_failed' }),
    // Stored by an older version: no reward field at all.
    sample('e', { kind: 'image', ability: 'unknown' }),
  ];
  const m = aggregateEvaluation(samples, ctx);
  assert.ok(m.reward);
  assert.equal(m.reward.samples, 3);
  assert.equal(m.reward.outcome, 4.75 / 3);
  assert.equal(m.reward.iou, 2 / 3);
  assert.equal(m.reward.box, 1 / 3);
  assert.equal(m.reward.point, 1 / 3);
  assert.equal(m.reward.frame, 0.25);
  assert.equal(m.reward.format, 2 / 3);
  assert.deepEqual(m.reward.perAbility, {
    'multi-hop': { samples: 1, outcome: 0 },
    'one-hop': { samples: 2, outcome: 2.375 },
  });
  assert.equal(
    outcomeRewardLine(m),
    'outcome reward 1.583 (iou 0.67, box 0.33, point 0.33, frame 0.25; n=3)',
  );

  const none = aggregateEvaluation([samples[3]!, samples[4]!], ctx);
  assert.equal(none.reward, null);
  assert.equal(outcomeRewardLine(none), 'outcome reward n/a (no sample has a trajectory to score)');
  // Results stored before the reward was recorded still parse; a stored null too.
  const { reward: _omit, ...old } = samples[0]!;
  assert.equal(sampleEvaluationSchema.safeParse(old).success, true);
  assert.equal(sampleEvaluationSchema.safeParse(samples[3]).success, true);
  assert.equal(sampleEvaluationSchema.safeParse({ ...old, reward: { outcome: 1 } }).success, false);
});

test('aggregate does not depend on the order results are read in', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          J: fc.double({ min: 0, max: 1, noNaN: true }),
          F: fc.double({ min: 0, max: 1, noNaN: true }),
          a: fc.constantFrom('one-hop', 'multi-hop', 'relational', 'in-video'),
        }),
        { minLength: 1, maxLength: 30 },
      ),
      fc.integer(),
      (rows, seed) => {
        const samples = rows.map((r, i) => sample(`s${i}`, { kind: 'video', ability: r.a, J: r.J, F: r.F }));
        const shuffled = [...samples].sort((x, y) => ((x.J * 1e6 + seed) % 7) - ((y.J * 1e6 + seed) % 7));
        assert.deepEqual(aggregateEvaluation(shuffled, ctx), aggregateEvaluation(samples, ctx));
      },
    ),
    { numRuns: 50 },
  );
});

test('aggregate: samples that failed for an infrastructure reason enter no metric; they are counted, listed and named in a line that says how to retry them', () => {
  const failed = (id: string, ability: string): FailedSample => ({
    schema: 'segflow.eval-sample-failed/1',
    evalId: 'e',
    sampleId: id,
    generation: 'initial',
    format: 'okvos',
    kind: 'video',
    ability,
    question: `q ${id}`,
    failure: { type: 'TransientError', message: `policy server down (HTTP 503) for ${id}` },
    policyVersion: 3,
    record: ref,
  });
  const scored = [
    sample('a', { kind: 'video', ability: 'one-hop', J: 0.8, F: 0.6 }),
    sample('b', { kind: 'video', ability: 'relational', J: 0.4, F: 0.2, error: 'keyframe 9 is not a frame' }),
  ];
  const m = aggregateEvaluation(scored, ctx, [failed('d', 'multi-hop'), failed('c', 'one-hop')]);
  const without = aggregateEvaluation(scored, ctx);
  assert.deepEqual(m.vos, without.vos, 'the failed samples change no metric');
  assert.equal(m.vos!.perAbility['multi-hop']!.count, 0);
  assert.deepEqual(
    { scored: m.samples.scored, errors: m.samples.errors, failed: m.samples.failed },
    { scored: 2, errors: 1, failed: 2 },
  );
  assert.deepEqual(
    m.samples.failedSamples?.map((f) => [f.sampleId, f.ability, f.type]),
    [
      ['c', 'one-hop', 'TransientError'],
      ['d', 'multi-hop', 'TransientError'],
    ],
  );
  assert.equal(
    failedSamplesLine(m),
    '2 samples failed for an infrastructure reason after their retries and are left out of the metrics: c (TransientError), d (TransientError); re-run the evaluation with the same id (segr eval --id e, same settings) to evaluate them again',
  );
  assert.equal(failedSamplesLine(without), null);
  assert.equal(without.samples.failed, 0);
  assert.throws(() => aggregateEvaluation(scored, ctx, [failed('a', 'one-hop')]), /sample a appears twice/);
  // Both kinds of stored result parse as what the result key holds.
  assert.equal(storedSampleSchema.parse(failed('c', 'one-hop')).schema, 'segflow.eval-sample-failed/1');
  assert.equal(storedSampleSchema.parse(scored[0]).schema, 'segflow.eval-sample/1');
});

test('`segr eval --fresh` asks the workflow to start afresh; without it a re-run reuses what is stored', () => {
  assert.equal(evaluationInputFrom({ dataset: 's3://segflow/d.json', fresh: true }).fresh, true);
  assert.equal('fresh' in evaluationInputFrom({ dataset: 's3://segflow/d.json' }), false);
});
