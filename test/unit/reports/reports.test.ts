// The report generators: inline SVG charts, the evaluation report (tables, bars, checkpoint curves,
// gallery, escaping, no external resource) and the training dashboard over generated step records.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { aggregateEvaluation } from '../../../activities/evaluation/aggregate.js';
import type { EvaluationPointer, SampleEvaluation } from '../../../core/contracts/index.js';
import { BadInputError } from '../../../activities/errors.js';
import { pickGallery, renderEvaluationReport } from '../../../activities/reports/evaluation-report.js';
import { barChart, lineChart, niceTicks } from '../../../activities/reports/svg.js';
import {
  parseTrainingMetrics,
  renderTrainingDashboard,
  type TrainingStepMetrics,
} from '../../../activities/reports/training-dashboard.js';
import type { RolloutGroupResult } from '../../../workflows/rollout-group.js';
import { rolloutMetrics } from '../../../workflows/training-metrics.js';

const count = (html: string, re: RegExp) => (html.match(re) ?? []).length;
const ref = { uri: 's3://segflow/x', sha256: 'b'.repeat(64), bytes: 1, contentType: 'image/jpeg' };

test('niceTicks gives round values covering the range', () => {
  assert.deepEqual(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(0, 100), [0, 20, 40, 60, 80, 100]);
  assert.deepEqual(niceTicks(3, 3), [3]);
});

test('barChart: one bar per finite value, n/a for NaN, labels escaped', () => {
  const svg = barChart({
    title: 'T <x>',
    series: ['J', 'F'],
    groups: [
      { label: 'one-hop', values: [0.5, 0.25] },
      { label: '<b>rel</b>', values: [NaN, 0.75] },
    ],
    yMax: 1,
  });
  assert.equal(count(svg, /<rect class="bar"/g), 3);
  assert.match(svg, />n\/a</);
  assert.ok(!svg.includes('<b>rel</b>'));
  assert.ok(svg.includes('&lt;b&gt;rel&lt;/b&gt;'));
  // Bar heights are proportional: 0.5 of the plot height for 0.5 with yMax 1.
  const heights = [...svg.matchAll(/class="bar"[^>]*height="([\d.]+)"/g)].map((m) => Number(m[1]));
  assert.ok(Math.abs(heights[0]! / heights[2]! - 0.5 / 0.75) < 0.02, String(heights));
});

test('lineChart: a NaN breaks the line into segments; points sorted by x', () => {
  const svg = lineChart({
    title: 'curve',
    xLabel: 'step',
    yLabel: 'v',
    series: [
      {
        name: 'a',
        points: [
          [2, 1],
          [0, 0],
          [1, 0.5],
          [3, NaN],
          [4, 2],
        ],
      },
    ],
  });
  const d = /<path class="line" d="([^"]+)"/.exec(svg)![1]!;
  assert.equal(count(d, /M/g), 2, d);
  assert.equal(count(svg, /<circle class="point"/g), 4);
  assert.match(lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [] }), /no data/);
});

function samples(): SampleEvaluation[] {
  const base = {
    schema: 'segflow.eval-sample/1' as const,
    evalId: 'ev',
    format: 'okvos',
    kind: 'video' as const,
    frames: [{ index: 0, J: 0.5, F: 0.5 }],
    intersection: 1,
    union: 2,
    gtArea: 2,
    predArea: 1,
    answerStatus: 'ok',
    stopReason: 'model_chose_to_finish',
    error: null,
    turns: 3,
    promptTokens: 10,
    completionTokens: 5,
    policyVersion: 2,
    searches: [{ tool: 'text_search', query: 'q', backend: 'local', cached: false }],
    keyframe: 0,
    box: [1, 2, 3, 4],
    record: ref,
    trajectory: null,
    prediction: null,
    overlay: ref,
    overlayFrame: 0,
  };
  return [
    {
      ...base,
      sampleId: 's1',
      ability: 'one-hop',
      question: 'Find <script>alert(1)</script>',
      J: 0.9,
      F: 0.8,
      JF: 0.85,
    },
    { ...base, sampleId: 's2', ability: 'multi-hop', question: 'q2', J: 0.1, F: 0.3, JF: 0.2 },
    { ...base, sampleId: 's3', ability: 'relational', question: 'q3', J: 0.5, F: 0.5, JF: 0.5 },
    { ...base, sampleId: 's4', ability: 'in-video', question: 'q4', J: 0.6, F: 0.4, JF: 0.5, overlay: null },
  ];
}

test('pickGallery: best first, worst last-first, no sample in both, samples without an overlay left out', () => {
  const g = pickGallery(samples(), 2);
  assert.deepEqual(
    g.best.map((s) => s.sampleId),
    ['s1', 's3'],
  );
  assert.deepEqual(
    g.worst.map((s) => s.sampleId),
    ['s2'],
  );
});

test('evaluation report: tables, per-ability bars, checkpoint curve, gallery; untrusted text escaped; nothing external', () => {
  const s = samples();
  const summary = JSON.parse(
    JSON.stringify(
      aggregateEvaluation(s, {
        evalId: 'ev',
        dataset: { uri: 's3://segflow/datasets/indexes/d.json', format: 'okvos', split: 'test', samples: 4 },
        policy: { model: 'policy', version: 2 },
        expected: 4,
        paid: { total: 1, byBackend: { serper: 1 } },
        prices: { serper: 0.001 },
      }),
    ),
  ); // through JSON like the stored summary: NaN becomes null
  const history: EvaluationPointer[] = [0, 1, 2].map((v) => ({
    evalId: `ev-v${v}`,
    policy: { model: 'policy', version: v },
    finishedAt: '2026-01-01T00:00:00.000Z',
    JF: 0.3 + v * 0.1,
    J: 0.3,
    F: 0.4,
    gIoU: null,
    cIoU: null,
    summary: ref,
  }));
  const px = 'data:image/jpeg;base64,AAAA';
  const { html, json } = renderEvaluationReport({
    summary,
    samples: s,
    history,
    best: [{ sampleId: 's1', ability: 'one-hop', score: 0.85, caption: 'c <i>', dataUrl: px }],
    worst: [{ sampleId: 's2', ability: 'multi-hop', score: 0.2, caption: 'c', dataUrl: px }],
    generatedAt: '2026-01-02T00:00:00.000Z',
  });
  assert.ok(!html.includes('<script>'), 'question text is escaped');
  assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
  assert.ok(html.includes('c &lt;i&gt;') && !html.includes('c <i>'), 'captions are escaped');
  assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//, 'no external resource');
  const vos = /<table id="vos-table">([\s\S]*?)<\/table>/.exec(html)![1]!;
  assert.equal(count(vos, /<tr>/g), 1 + 5, 'header + four abilities + overall');
  assert.match(
    vos,
    /<td>one-hop<\/td><td class="n">1<\/td><td class="n">90\.0<\/td><td class="n">80\.0<\/td><td class="n">85\.0<\/td>/,
  );
  assert.match(
    vos,
    /overall<\/b><\/td><td class="n">4<\/td><td class="n">52\.5<\/td><td class="n">50\.0<\/td><td class="n"><b>51\.2<\/b>/,
  );
  assert.match(vos, /<td>relational<\/td><td class="n">1<\/td>/);
  assert.equal(count(html, /<rect class="bar"/g), 15, 'J, F, J&F for four abilities and overall');
  assert.equal(count(html, /<circle class="point"/g), 9, 'J&F, J, F at three versions');
  assert.equal(count(html, /<img /g), 2);
  const samplesTable = /<table id="samples-table">([\s\S]*?)<\/table>/.exec(html)![1]!;
  assert.equal(count(samplesTable, /<tr>/g), 5);
  assert.match(html, /cost \(USD\)<\/td><td class="n">0\.0010/);
  assert.equal(json.samples.length, 4);
  assert.deepEqual(json.gallery, { best: ['s1'], worst: ['s2'] });
  assert.equal(json.metrics.search.paidCalls, 1);
});

test('evaluation report: the outcome reward as a key figure, a table of its terms, per ability, per sample and across checkpoints', () => {
  const s = samples().map((x, i) => ({
    ...x,
    reward:
      i === 3 ? null : { outcome: i + 0.5, iou: i === 0 ? 0 : 1, box: 0, point: 0, frame: 0.5, format: 1 },
  }));
  const summary = aggregateEvaluation(s, {
    evalId: 'ev',
    dataset: { uri: 's3://segflow/datasets/indexes/d.json', format: 'okvos', split: 'test', samples: 4 },
    policy: { model: 'policy', version: 2 },
    expected: 4,
    paid: { total: 0, byBackend: {} },
  });
  const history: EvaluationPointer[] = [0, 1, 2].map((v) => ({
    evalId: `ev-v${v}`,
    policy: { model: 'policy', version: v },
    finishedAt: '2026-01-01T00:00:00.000Z',
    JF: 0.3,
    J: 0.3,
    F: 0.4,
    gIoU: null,
    cIoU: null,
    // v0 was written before the outcome reward was recorded.
    ...(v === 0 ? {} : { outcome: v }),
    summary: ref,
  }));
  const { html, json } = renderEvaluationReport({
    summary,
    samples: s,
    history,
    best: [],
    worst: [],
    generatedAt: '2026-01-02T00:00:00.000Z',
  });
  assert.match(html, /<b>1\.500<\/b>outcome reward \(0–4\)/);
  const terms = /<table id="reward-table">([\s\S]*?)<\/table>/.exec(html)![1]!;
  assert.match(terms, /R_iou[^<]*<\/td><td class="n">0\.667</);
  assert.match(terms, /R_frame[^<]*<\/td><td class="n">0\.500</);
  assert.match(terms, /samples with a reward<\/td><td class="n">3</);
  const abilities = /<table id="reward-ability-table">([\s\S]*?)<\/table>/.exec(html)![1]!;
  assert.match(abilities, /<td>multi-hop<\/td><td class="n">1<\/td><td class="n">1\.500<\/td>/);
  assert.doesNotMatch(abilities, /in-video/, 'the in-video sample has no reward');
  const checkpoints = /<table id="checkpoint-table">([\s\S]*?)<\/table>/.exec(html)![1]!;
  const row = (id: string) => new RegExp(`<tr><td>${id}</td>(.*?)</tr>`).exec(checkpoints)![1]!;
  assert.equal(count(row('ev-v0'), /n\/a/g), 3, 'gIoU, cIoU and the outcome it did not record');
  assert.match(row('ev-v2'), /<td class="n">2\.000<\/td><td>2026/);
  assert.match(html, /Mean outcome reward by policy version/);
  assert.equal(count(html, /<circle class="point"[^>]*><title>outcome @/g), 2, 'v1 and v2; v0 has none');
  assert.deepEqual(
    json.samples.map((x) => x.reward?.outcome ?? null),
    [0.5, 1.5, 2.5, null],
  );
  assert.equal(json.metrics.reward?.samples, 3);
});

/** Step records as a trainingRun would write them: rewards rising, searches settling, versions +1 per step. */
export function generatedSteps(n: number, runId = 'run-a'): TrainingStepMetrics[] {
  return Array.from({ length: n }, (_, step) => ({
    schema: 'segflow.training-step/1' as const,
    runId,
    step,
    policyVersion: step,
    reward: {
      mean: 1 + step * 0.2,
      std: 0.5,
      components: { format: 0.9 + step * 0.01, outcome: 0.5 + step * 0.15, igr: 0.2 + step * 0.02 },
    },
    searchesPerTrajectory: { mean: 1.5 + Math.sin(step), max: 4 },
    responseLength: { mean: 400 + 10 * step, max: 900 },
    trajectories: 128,
    groups: { kept: 14, filtered: 2 },
    stopReasons: { model_chose_to_finish: 120, max_turns_reached: 8 },
    trainer: { loss: 0.5 - step * 0.01, clipFraction: 0.1 },
  }));
}

test('training dashboard: curves for reward components, searches, response length and policy version; a row per step', () => {
  const records = parseTrainingMetrics(
    generatedSteps(12).map((value, i) => ({ value, origin: `step ${i}` })),
  );
  const html = renderTrainingDashboard(records, { generatedAt: '2026-01-01T00:00:00Z' });
  assert.equal(count(html, /<svg class="chart line-chart"/g), 5);
  // reward chart: total + 3 components, 12 points each; searches mean+max; length mean+max; version; trainer 2.
  assert.equal(count(html, /<circle class="point"/g), 12 * (4 + 2 + 2 + 1 + 2));
  const steps = /<table id="steps-table">([\s\S]*?)<\/table>/.exec(html)![1]!;
  assert.equal(count(steps, /<tr>/g), 13);
  assert.match(html, /<td>max_turns_reached<\/td><td class="n">96<\/td>/);
  assert.match(html, /policy version/);
});

test('training metrics: a bad record names its origin; a repeated step keeps the last; records sorted by run and step', () => {
  const good = generatedSteps(3);
  assert.throws(
    () =>
      parseTrainingMetrics([
        { value: { ...good[0], reward: { mean: 'x' } }, origin: 'runs/r/metrics/0.json' },
      ]),
    (e: unknown) => e instanceof BadInputError && /runs\/r\/metrics\/0\.json .*reward/.test(e.message),
  );
  const later = { ...good[1]!, reward: { ...good[1]!.reward, mean: 99 } };
  const parsed = parseTrainingMetrics(
    [good[2]!, good[1]!, good[0]!, later, ...generatedSteps(1, 'run-0')].map((value) => ({
      value,
      origin: 'x',
    })),
  );
  assert.deepEqual(
    parsed.map((r) => `${r.runId}:${r.step}`),
    ['run-0:0', 'run-a:0', 'run-a:1', 'run-a:2'],
  );
  assert.equal(parsed[2]!.reward.mean, 99);
  assert.throws(() => renderTrainingDashboard([], { generatedAt: 'x' }), BadInputError);
});

test('training dashboard reads trainingRun step metrics (segflow.training-metrics/1) as that workflow writes them', () => {
  const traj = (total: number, searches: number, tokens: number, stop: string) => ({
    summary: {
      numSearch: searches,
      turns: searches + 2,
      completionTokens: tokens,
      stopReason: stop,
      answer: { status: 'ok' },
    },
    reward: {
      total,
      outcome: total / 2,
      format: 1,
      process: null,
      igr: 0.3,
      tpr: 0.5,
      iou: 0.6,
      box: 0.7,
      point: 1,
      frame: 1,
    },
    advantage: 0,
  });
  const records = [0, 1, 2].map((step) => {
    const groups = [
      {
        trajectories: [
          traj(1 + step, 1, 100, 'model_chose_to_finish'),
          traj(2 + step, 2, 300, 'max_turns_reached'),
        ],
        rewardStd: 0.7,
      },
    ] as unknown as RolloutGroupResult[];
    // The record trainingWriteMetrics stores (activities/training/activities.ts).
    return {
      value: JSON.parse(
        JSON.stringify({
          schema: 'segflow.training-metrics/1',
          runId: 'tr',
          step,
          policyVersion: step + 1,
          skipped: false,
          generationBatches: 1,
          keptGroups: 1,
          droppedGroups: 0,
          staleGroups: 0,
          rollouts: rolloutMetrics(groups),
          trained: rolloutMetrics(groups),
          trainer: { loss: 0.4, pgClipFraction: 0.1, kl: null },
          weightsSha256: null,
          timings: { rolloutMs: 1500, updateMs: 500, syncMs: 10, totalMs: 2010 },
        }),
      ) as unknown,
      origin: `runs/tr/steps/${step}/metrics.json`,
    };
  });
  const parsed = parseTrainingMetrics(records);
  assert.equal(parsed.length, 3);
  assert.equal(parsed[1]!.reward.mean, 2.5);
  assert.equal(parsed[1]!.reward.components.outcome, 1.25);
  assert.equal(parsed[1]!.reward.components.process, undefined, 'null components are left out');
  assert.deepEqual(parsed[0]!.searchesPerTrajectory, { mean: 1.5, min: 1, max: 2 });
  assert.equal(parsed[0]!.responseLength.mean, 200);
  assert.deepEqual(parsed[0]!.trainer, { loss: 0.4, pgClipFraction: 0.1 });
  assert.equal(parsed[0]!.timings!.rollout, 1.5);
  const html = renderTrainingDashboard(parsed, { generatedAt: 'now' });
  assert.match(html, /<td>max_turns_reached<\/td><td class="n">3<\/td>/);
  assert.throws(
    () =>
      parseTrainingMetrics([
        {
          value: { schema: 'segflow.training-metrics/1', runId: 'x' },
          origin: 'runs/x/steps/0/metrics.json',
        },
      ]),
    /runs\/x\/steps\/0\/metrics\.json is not a valid trainingRun metrics record: step/,
  );
});
