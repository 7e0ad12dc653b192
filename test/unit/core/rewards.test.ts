// The Seg-ReSearch reward: hand-made trajectories, presets, the similarity provider, and properties.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  parseFinalAnswer,
  parseKeyframeAction,
  parseSearchAction,
  routeAction,
  classifyTurn,
  extractAnswer,
} from '../../../core/protocol/actions.js';
import { segZeroReward, SEGZERO_DEFAULTS } from '../../../core/protocol/segzero.js';
import { pyJsonLoads } from '../../../core/pycompat/pyjson.js';
import { validationAccuracy } from '../../../core/rewards/terms.js';
import {
  scoreTrajectory,
  scoreTrajectoryWith,
  similarityRequests,
  type RewardBreakdown,
  type SimilarityProvider,
} from '../../../core/rewards/score.js';
import {
  hierarchical,
  maxTotal,
  outcomeOnly,
  REWARD_PRESETS,
  rewardSettings,
  stepwise,
} from '../../../core/rewards/settings.js';

const GT = JSON.stringify({
  '0': { bbox_2d: [98, 202, 399, 698], point_2d: [240, 460], area: 0.5, max_conn_area: 0.4 },
  '5': { bbox_2d: [100, 200, 400, 700], point_2d: [250, 450], area: 1, max_conn_area: 1 },
});

function trajectory(answer: string, keyframe = '5', searches = 2): string {
  let s = '';
  for (let i = 0; i < searches; i++) {
    s += `<thinking> plan ${i} </thinking>\n<search> {"name": "text_search", "query": "winner of race ${i}"} </search>`;
    s += `user\n<information>1. (Title: T) body\n</information>\n\n`;
  }
  s += `<thinking> compare </thinking>\n<keyframe> ${keyframe} </keyframe>user\nHere is the high-res version of your selected frame: \n`;
  s += `<thinking> locate </thinking>\n<answer> ${answer} </answer>`;
  return s;
}

/** A real (lexical) similarity: cosine of word-count vectors. */
class BagOfWordsSimilarity implements SimilarityProvider {
  calls: { query: string; refs: readonly string[] }[] = [];
  async similarities(query: string, refs: readonly string[]): Promise<number[]> {
    this.calls.push({ query, refs });
    const vec = (t: string) => {
      const m = new Map<string, number>();
      for (const w of t.toLowerCase().split(/\W+/).filter(Boolean)) m.set(w, (m.get(w) ?? 0) + 1);
      return m;
    };
    const q = vec(query);
    return Promise.resolve(
      refs.map((r) => {
        const v = vec(r);
        let dot = 0;
        for (const [w, c] of q) dot += c * (v.get(w) ?? 0);
        const norm = (m: Map<string, number>) => Math.sqrt([...m.values()].reduce((a, c) => a + c * c, 0));
        return dot === 0 ? 0 : dot / (norm(q) * norm(v));
      }),
    );
  }
}

void test('a perfect search trajectory scores R = 4 + 0.5·(1 + TPR(k = 3))', () => {
  const r = scoreTrajectory({
    response: trajectory('{"bbox_2d": [100, 200, 400, 700], "point_2d": [250, 450]}'),
    groundTruth: GT,
    steps: ['find the race', 'winner of race'],
    similarity: { firstQuery: [0.3, 0.8] },
  });
  assert.deepEqual([r.format, r.igr, r.k, r.searchSteps, r.numSearch], [1, 1, 3, 2, 2]);
  assert.equal(r.tpr, 0.973);
  assert.equal(r.process, 0.5 * (1 + 0.973));
  assert.deepEqual([r.iou, r.box, r.point, r.frame, r.outcome], [1, 1, 1, 1, 4]);
  assert.equal(r.total, 4 + 0.5 * (1 + 0.973));
  assert.equal(r.firstQuery, 'winner of race 0');
  assert.ok(r.reasons.some((x) => x.startsWith('IGR 1: best similarity 0.8000 > 0.5')));
});

void test('a misspelt point_2_d keeps R_iou, R_box and R_frame but loses R_point and F (spec §5.5)', () => {
  const r = scoreTrajectory({
    response: trajectory('{"bbox_2d": [100, 200, 400, 700], "point_2_d": [250, 450]}'),
    groundTruth: GT,
  });
  assert.deepEqual([r.iou, r.box, r.point, r.frame, r.format], [1, 1, 0, 1, 0]);
  assert.ok(r.reasons.some((x) => x.includes('R_point 0: the answer has no "point_2d"')));
});

void test('a keyframe outside the ground truth zeroes every outcome term, and says why', () => {
  const r = scoreTrajectory({
    response: trajectory('{"bbox_2d": [100, 200, 400, 700], "point_2d": [250, 450]}', '7'),
    groundTruth: GT,
  });
  assert.deepEqual([r.iou, r.box, r.point, r.frame], [0, 0, 0, 0]);
  assert.equal(r.format, 1);
  assert.ok(r.reasons.some((x) => x.includes('keyframe 7 is not a ground-truth frame [0, 5]')));
});

void test('without similarities IGR, P and R are unknown (null), never guessed', () => {
  const r = scoreTrajectory({
    response: trajectory('{"bbox_2d": [1, 2, 3, 4], "point_2d": [2, 3]}'),
    groundTruth: GT,
    steps: ['x'],
  });
  assert.deepEqual([r.igr, r.process, r.total], [null, null, null]);
  assert.ok(r.reasons.some((x) => x.includes('SimilarityProvider')));
  // No steps: P = F and the total is known.
  const plain = scoreTrajectory({
    response: trajectory('{"bbox_2d": [1, 2, 3, 4], "point_2d": [2, 3]}'),
    groundTruth: GT,
  });
  assert.equal(plain.process, plain.format);
  assert.equal(plain.total, plain.outcome + plain.format);
});

void test('scoreTrajectoryWith asks the provider for the first text_search query against every step', async () => {
  const provider = new BagOfWordsSimilarity();
  const input = {
    response: trajectory('{"bbox_2d": [100, 200, 400, 700], "point_2d": [250, 450]}'),
    groundTruth: GT,
    steps: ['who won the race', 'winner of race 0'],
  };
  const r = await scoreTrajectoryWith(input, provider);
  assert.deepEqual(provider.calls, [
    { query: 'winner of race 0', refs: ['who won the race', 'winner of race 0'] },
  ]);
  assert.equal(r.igr, 1);
  const far = await scoreTrajectoryWith({ ...input, steps: ['completely unrelated words'] }, provider);
  assert.equal(far.igr, 0);
  assert.equal(far.total, far.outcome + 0.5 * (0 + far.tpr));
});

void test('presets: outcome-only drops P; stepwise matches the j-th query to the j-th step', async () => {
  const response = trajectory('{"bbox_2d": [100, 200, 400, 700], "point_2d": [250, 450]}');
  const o = scoreTrajectory({ response, groundTruth: GT, steps: ['s'] }, outcomeOnly);
  assert.equal(o.total, 4);
  assert.equal(o.process, 0);
  assert.deepEqual([maxTotal(hierarchical), maxTotal(outcomeOnly), maxTotal(stepwise)], [5, 4, 5]);
  const steps = ['winner of race 0', 'something else', 'a third step'];
  assert.deepEqual(
    similarityRequests({ response, groundTruth: GT, steps }, stepwise).map((q) => [q.query, q.refs]),
    [
      ['winner of race 0', ['winner of race 0']],
      ['winner of race 1', ['something else']],
    ],
  );
  const s = await scoreTrajectoryWith(
    { response, groundTruth: GT, steps },
    new BagOfWordsSimilarity(),
    stepwise,
  );
  assert.equal(s.stepMatch, 1 / 3);
  assert.equal(s.process, 0.5 * (1 / 3) + 0.5 * 1);
  assert.equal(rewardSettings('hierarchical', { tprP: 0.5 }).tprP, 0.5);
  assert.equal(rewardSettings('outcomeOnly', { weights: { iou: 2 } }).weights.process, 0);
  assert.deepEqual(Object.keys(REWARD_PRESETS), ['hierarchical', 'outcomeOnly', 'stepwise']);
});

function wellFormed(r: RewardBreakdown, max: number): void {
  for (const k of [
    'outcome',
    'format',
    'tpr',
    'k',
    'searchSteps',
    'numSearch',
    'iou',
    'box',
    'point',
    'frame',
  ] as const) {
    assert.equal(typeof r[k], 'number', k);
    assert.ok(Number.isFinite(r[k]), `${k} = ${r[k]}`);
  }
  for (const k of ['format', 'iou', 'box', 'point'] as const) assert.ok(r[k] === 0 || r[k] === 1, k);
  assert.ok(r.tpr >= 0 && r.tpr < 1);
  assert.ok(r.frame >= 0 && r.frame <= 1);
  assert.ok(r.total !== null && r.total >= 0 && r.total <= max, `total ${r.total}`);
  assert.ok(r.reasons.length > 0 && r.reasons.every((x) => typeof x === 'string' && x.length > 0));
}

const TAGS = [
  '<thinking>',
  '</thinking>',
  '<search>',
  '</search>',
  '<keyframe>',
  '</keyframe>',
  '<answer>',
  '</answer>',
  ' 5 ',
  '0',
  '\n',
  '{"bbox_2d": [100, 200, 400, 700], "point_2d": [250, 450]}',
  '{"name": "text_search", "query": "q"}',
  '"}',
  'NaN',
  '[1e999, -1e999]',
];
const text = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.array(fc.constantFrom(...TAGS), { maxLength: 25 }).map((a) => a.join('')),
);

void test('property: any text scores without throwing, with every term in range (all presets)', () => {
  fc.assert(
    fc.property(
      text,
      fc.oneof(fc.constant(GT), fc.string({ maxLength: 40 })),
      fc.array(fc.record({ step: fc.string({ maxLength: 10 }), sim: fc.double({ min: -1, max: 1 }) }), {
        maxLength: 3,
      }),
      (response, gt, pairs) => {
        // Similarities as a provider returns them: one per step (first query), one per matched step.
        const steps = pairs.map((p) => p.step);
        const sims = pairs.map((p) => p.sim);
        for (const settings of Object.values(REWARD_PRESETS)) {
          const r = scoreTrajectory(
            { response, groundTruth: gt, steps, similarity: { firstQuery: sims, perStep: sims } },
            settings,
          );
          wellFormed(r, maxTotal(settings));
        }
      },
    ),
    { numRuns: 500 },
  );
});

void test('property: the parsers accept any text and return well-formed results', () => {
  fc.assert(
    fc.property(text, (s) => {
      const sa = parseSearchAction(s);
      assert.ok(
        sa === null ||
          (sa.kind === 'call' && typeof sa.query === 'string') ||
          (sa.kind === 'error' && sa.observation.length > 0),
      );
      const ka = parseKeyframeAction(s);
      assert.ok(
        ka === null || (ka.kind === 'select' && Number.isFinite(ka.frameId)) || ka.kind === 'invalid',
      );
      assert.ok(['search', 'keyframe', 'none'].includes(routeAction(s).tool));
      assert.ok(['missing', 'invalid-json', 'json'].includes(extractAnswer(s).kind));
      const fa = parseFinalAnswer(s);
      assert.ok(fa.box === null || fa.box.length === 4);
      assert.ok(['search', 'keyframe', 'answer', 'other'].includes(classifyTurn(s).kind));
      const j = pyJsonLoads(s);
      assert.ok(j.ok || /: line \d+ column \d+ \(char \d+\)$/.test(j.error.message));
      for (const format of ['soft', 'strict'] as const) {
        const z = segZeroReward(s, '<box>(1,2),(30,40)</box><points>(5,6),(7,8)</points>', {
          ...SEGZERO_DEFAULTS,
          format,
        });
        assert.ok(z.total >= 0 && z.total <= 5 && Number.isInteger(z.total));
      }
    }),
    { numRuns: 1500 },
  );
});

void test('validation acc is the raw box IoU at the LAST keyframe', () => {
  const response =
    '<keyframe> 5 </keyframe> <keyframe> 0 </keyframe> <answer> {"bbox_2d": [98, 202, 399, 698], "point_2d": [1, 1]} </answer>';
  assert.equal(validationAccuracy(response, GT).value, 1);
  // Against frame 5's box [100, 200, 400, 700]: inter 299·497, union 301·501 + 302·497 − inter.
  const at5 = '<keyframe> 5 </keyframe> <answer> {"bbox_2d": [98, 202, 399, 698]} </answer>';
  assert.equal(validationAccuracy(at5, GT).value, (300 * 497) / (302 * 497 + 301 * 501 - 300 * 497));
  assert.equal(
    validationAccuracy('<answer>{"bbox_2d": [0, 0, 9, 9]}</answer>', '{"bbox_2d": [0, 0, 9, 9]}', false)
      .value,
    1,
  );
  assert.equal(validationAccuracy('<keyframe>9</keyframe><answer>{}</answer>', GT).value, 0);
});
