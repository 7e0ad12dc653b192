/**
 * The training dashboard: the report generator over a trainingRun's per-step metric records.
 *
 * Input: per-step records, either in the dashboard's own shape ({@link trainingStepMetricsSchema},
 * easy to produce from any trainer) or as the trainingRun workflow stores them
 * (`runs/<run>/steps/<k>/metrics.json`, {@link trainingRunMetricsSchema}), mapped by
 * {@link fromTrainingRunMetrics}. `segr report training` reads an S3 prefix, a folder or a JSONL
 * file of them. Extra fields are ignored, so the trainer can add measurements freely.
 */
import { z } from 'zod';
import { BadInputError } from '../errors.js';
import { cell, escapeHtml, kpi, page, table } from './html.js';
import { lineChart, type LineSeries } from './svg.js';

const finite = z.number().finite();
const stat = z.object({
  mean: finite,
  std: finite.optional(),
  min: finite.optional(),
  max: finite.optional(),
});

export const trainingStepMetricsSchema = z.looseObject({
  schema: z.literal('segflow.training-step/1').optional(),
  runId: z.string().min(1),
  /** 0-based optimisation step this record closes. */
  step: z.number().int().min(0),
  /** Policy version the step's rollouts were sampled from. */
  policyVersion: z.number().int().min(0),
  /** Total hierarchical reward over the step's trajectories, and each component's mean (format, outcome, igr, …). */
  reward: z.object({ mean: finite, std: finite.optional(), components: z.record(z.string(), finite) }),
  /** `<search>` calls per trajectory. */
  searchesPerTrajectory: stat,
  /** Response length in tokens (generations + observations, prompt excluded). */
  responseLength: stat,
  /** Trajectories in the step's batch. */
  trajectories: z.number().int().min(0).optional(),
  /** DAPO: groups kept / dropped for zero reward variance. */
  groups: z.object({ kept: z.number().int().min(0), filtered: z.number().int().min(0) }).optional(),
  stopReasons: z.record(z.string(), z.number().int().min(0)).optional(),
  /** Seconds per phase (rollouts, rewards, update, sync). */
  timings: z.record(z.string(), finite).optional(),
  /** Trainer metrics (loss, clip fraction, KL, grad norm…). */
  trainer: z.record(z.string(), finite).optional(),
});
export type TrainingStepMetrics = z.infer<typeof trainingStepMetricsSchema>;

const distribution = z.object({ mean: finite, min: finite, max: finite });

/**
 * What `trainingRun` stores per step (`runs/<run>/steps/<k>/metrics.json`, schema
 * `segflow.training-metrics/1`, built by workflows/training-metrics.ts): read as it is and mapped
 * onto {@link TrainingStepMetrics}.
 */
export const trainingRunMetricsSchema = z.looseObject({
  schema: z.literal('segflow.training-metrics/1'),
  runId: z.string().min(1),
  step: z.number().int().min(0),
  policyVersion: z.number().int().min(0),
  keptGroups: z.number().int().min(0).optional(),
  droppedGroups: z.number().int().min(0).optional(),
  rollouts: z.looseObject({
    trajectories: z.number().int().min(0),
    reward: z.looseObject({ total: distribution }).catchall(finite.nullable().or(distribution)),
    searchesPerTrajectory: distribution,
    responseTokens: distribution,
    stopReasons: z.record(z.string(), z.number().int().min(0)),
  }),
  trainer: z.record(z.string(), z.unknown()).nullable().optional(),
  timings: z.record(z.string(), finite).optional(),
});

/** A trainingRun step record in the dashboard's shape (ms timings become seconds). */
export function fromTrainingRunMetrics(m: z.infer<typeof trainingRunMetricsSchema>): TrainingStepMetrics {
  const components: Record<string, number> = {};
  for (const [k, v] of Object.entries(m.rollouts.reward))
    if (k !== 'total' && typeof v === 'number') components[k] = v;
  const trainer: Record<string, number> = {};
  for (const [k, v] of Object.entries(m.trainer ?? {}))
    if (typeof v === 'number' && Number.isFinite(v)) trainer[k] = v;
  const timings: Record<string, number> = {};
  for (const [k, v] of Object.entries(m.timings ?? {}))
    timings[k.replace(/Ms$/, '')] = k.endsWith('Ms') ? v / 1000 : v;
  return {
    runId: m.runId,
    step: m.step,
    policyVersion: m.policyVersion,
    reward: { mean: m.rollouts.reward.total.mean, components },
    searchesPerTrajectory: m.rollouts.searchesPerTrajectory,
    responseLength: m.rollouts.responseTokens,
    trajectories: m.rollouts.trajectories,
    ...(m.keptGroups !== undefined ? { groups: { kept: m.keptGroups, filtered: m.droppedGroups ?? 0 } } : {}),
    stopReasons: m.rollouts.stopReasons,
    timings,
    trainer,
  };
}

/**
 * Validates records (named by `origin` in errors): the dashboard's own shape or a trainingRun's
 * step metrics; duplicates of a step keep the last one.
 */
export function parseTrainingMetrics(
  records: readonly { value: unknown; origin: string }[],
): TrainingStepMetrics[] {
  const byStep = new Map<string, TrainingStepMetrics>();
  for (const { value, origin } of records) {
    if ((value as { schema?: unknown } | null)?.schema === 'segflow.training-metrics/1') {
      const t = trainingRunMetricsSchema.safeParse(value);
      if (!t.success) {
        throw new BadInputError(
          `${origin} is not a valid trainingRun metrics record: ${t.error.issues
            .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
            .join('; ')}`,
          { origin },
        );
      }
      const m = fromTrainingRunMetrics(t.data);
      byStep.set(`${m.runId}\u0000${m.step}`, m);
      continue;
    }
    const r = trainingStepMetricsSchema.safeParse(value);
    if (!r.success) {
      throw new BadInputError(
        `${origin} is not a training step metrics record: ${r.error.issues
          .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
          .join(
            '; ',
          )} (expected {runId, step, policyVersion, reward: {mean, components}, searchesPerTrajectory: {mean}, responseLength: {mean}})`,
        { origin },
      );
    }
    byStep.set(`${r.data.runId}\u0000${r.data.step}`, r.data);
  }
  return [...byStep.values()].sort((a, b) =>
    a.runId < b.runId ? -1 : a.runId > b.runId ? 1 : a.step - b.step,
  );
}

/** The dashboard page for one or more runs' step records. */
export function renderTrainingDashboard(
  records: readonly TrainingStepMetrics[],
  opts: { title?: string; generatedAt: string },
): string {
  if (records.length === 0)
    throw new BadInputError('no training step metrics to show (the run has not finished a step yet?)');
  const runs = [...new Set(records.map((r) => r.runId))];
  const title = opts.title ?? `Training ${runs.join(', ')}`;
  const body: string[] = [`<h1>${escapeHtml(title)}</h1>`];
  body.push(`<p class="meta">${records.length} steps · generated ${escapeHtml(opts.generatedAt)}</p>`);
  const last = records[records.length - 1]!;
  body.push(
    `<div id="kpis">${[
      kpi('last step', String(last.step)),
      kpi('policy version', String(last.policyVersion)),
      kpi('reward (last step)', cell(last.reward.mean)),
      kpi('searches / trajectory', cell(last.searchesPerTrajectory.mean, 2)),
      kpi('response length', cell(last.responseLength.mean, 0)),
    ].join('')}</div>`,
  );
  const perRun = (name: string, pick: (r: TrainingStepMetrics) => number | undefined): LineSeries[] =>
    runs.map((run) => ({
      name: runs.length > 1 ? `${name} (${run})` : name,
      points: records.filter((r) => r.runId === run).map((r) => [r.step, pick(r) ?? NaN] as [number, number]),
    }));
  const components = [...new Set(records.flatMap((r) => Object.keys(r.reward.components)))].sort();
  const charts = [
    lineChart({
      title: 'Reward per step',
      xLabel: 'step',
      yLabel: 'reward',
      series: [
        ...perRun('total', (r) => r.reward.mean),
        ...components.flatMap((c) => perRun(c, (r) => r.reward.components[c])),
      ],
    }),
    lineChart({
      title: 'Searches per trajectory',
      xLabel: 'step',
      yLabel: 'searches',
      series: [
        ...perRun('mean', (r) => r.searchesPerTrajectory.mean),
        ...perRun('max', (r) => r.searchesPerTrajectory.max),
      ],
    }),
    lineChart({
      title: 'Response length (tokens)',
      xLabel: 'step',
      yLabel: 'tokens',
      format: (v) => v.toFixed(0),
      series: [
        ...perRun('mean', (r) => r.responseLength.mean),
        ...perRun('max', (r) => r.responseLength.max),
      ],
    }),
    lineChart({
      title: 'Policy version',
      xLabel: 'step',
      yLabel: 'version',
      format: (v) => v.toFixed(0),
      series: perRun('version', (r) => r.policyVersion),
    }),
  ];
  const trainerKeys = [...new Set(records.flatMap((r) => Object.keys(r.trainer ?? {})))].sort();
  if (trainerKeys.length > 0) {
    charts.push(
      lineChart({
        title: 'Trainer',
        xLabel: 'step',
        yLabel: 'value',
        series: trainerKeys.flatMap((k) => perRun(k, (r) => r.trainer?.[k])),
      }),
    );
  }
  body.push('<h2>Curves</h2>', `<div class="charts">${charts.join('')}</div>`);

  const stops = new Map<string, number>();
  for (const r of records)
    for (const [k, v] of Object.entries(r.stopReasons ?? {})) stops.set(k, (stops.get(k) ?? 0) + v);
  if (stops.size > 0) {
    body.push(
      '<h2>Stop reasons (all steps)</h2>',
      table(
        ['stop reason', 'trajectories'],
        [...stops.entries()].sort().map(([k, v]) => [escapeHtml(k), String(v)]),
        { id: 'stop-table' },
      ),
    );
  }
  body.push('<h2>Steps</h2>');
  body.push(
    `<div class="scroll">${table(
      [
        'run',
        'step',
        'policy',
        'reward',
        ...components,
        'searches/traj',
        'resp. length',
        'trajectories',
        'groups kept/filtered',
      ],
      records.map((r) => [
        escapeHtml(r.runId),
        String(r.step),
        String(r.policyVersion),
        cell(r.reward.mean),
        ...components.map((c) => cell(r.reward.components[c])),
        cell(r.searchesPerTrajectory.mean, 2),
        cell(r.responseLength.mean, 0),
        r.trajectories === undefined ? '' : String(r.trajectories),
        r.groups ? `${r.groups.kept}/${r.groups.filtered}` : '',
      ]),
      { id: 'steps-table' },
    )}</div>`,
  );
  return page(title, body.join('\n'));
}
