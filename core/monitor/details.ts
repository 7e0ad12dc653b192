/**
 * What the Temporal Web UI shows for segflow's workflows (pure, deterministic, safe in workflows):
 * the "Current details" markdown a workflow keeps up to date with `setCurrentDetails`, and the
 * one-line summaries of workflow starts, children and activity calls. The UI renders these instead
 * of opaque ids, so the run page reads like a run monitor without querying a worker.
 */

const num = (x: number | null | undefined, digits = 3): string =>
  typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : '–';

/** Collapses whitespace and cuts a free text to `max` characters for a one-line summary. */
export function oneLine(text: string, max = 80): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** The last finished step as the run page shows it. */
export interface LastStepDetails {
  step: number;
  policyVersion: number;
  reward: { total: number; outcome: number; format: number; process: number | null; igr: number | null };
  keptGroups: number;
  droppedGroups: number;
  skipped: boolean;
  trainer: { loss: number; pgClipFraction?: number; gradNorm?: number } | null;
  /** The step's metrics JSON in S3. */
  metricsUri: string;
}

export interface TrainingDetailsInput {
  runId: string;
  step: number;
  steps: number;
  phase: string;
  paused: boolean;
  stopRequested: boolean;
  policyVersion: number;
  generation: number;
  groupsDone: number;
  groupsStarted: number;
  keptGroups: number;
  last?: LastStepDetails | undefined;
}

/** The trainingRun's current details (markdown). */
export function trainingDetails(d: TrainingDetailsInput): string {
  const flags = [
    d.paused && d.phase !== 'paused' ? 'pausing after this step' : '',
    d.stopRequested ? 'stopping after this step' : '',
  ]
    .filter(Boolean)
    .join(', ');
  const lines = [
    `**${['paused', 'completed', 'stopped'].includes(d.phase) ? `${d.step}/${d.steps} steps done` : `step ${d.step + 1}/${d.steps}`}** · phase **${d.phase}**${flags ? ` (${flags})` : ''} · policy v${d.policyVersion}`,
    '',
    `groups ${d.groupsDone}/${d.groupsStarted} done · generation ${d.generation} · kept ${d.keptGroups}`,
  ];
  const l = d.last;
  if (l) {
    lines.push(
      '',
      `last step ${l.step}${l.skipped ? ' (skipped: no learning signal)' : ''} → policy v${l.policyVersion}: reward **${num(l.reward.total)}** (outcome ${num(l.reward.outcome)} · format ${num(l.reward.format)} · process ${num(l.reward.process)} · IGR ${num(l.reward.igr)}) · kept ${l.keptGroups}, dropped ${l.droppedGroups}`,
    );
    if (l.trainer)
      lines.push(
        '',
        `trainer: loss ${num(l.trainer.loss, 4)} · clip fraction ${num(l.trainer.pgClipFraction)} · grad norm ${num(l.trainer.gradNorm)}`,
      );
    const prefix = l.metricsUri.replace(/[^/]+\/metrics\.json$/, '');
    lines.push('', `metrics: \`${l.metricsUri}\` · dashboard: \`segr report training --metrics ${prefix}\``);
  }
  return lines.join('\n');
}

export interface EvaluationDetailsInput {
  dataset: string;
  step: string;
  page: number;
  total: number | null;
  evaluated: number;
  skipped: number;
  running: number;
  policy: { model: string | null; version: number | null };
}

/** The evaluation's current details (markdown). */
export function evaluationDetails(d: EvaluationDetailsInput): string {
  const done = d.evaluated + d.skipped;
  return [
    `**${d.step}** · page ${d.page} · ${done}/${d.total ?? '?'} samples (evaluated ${d.evaluated}, skipped ${d.skipped} already stored) · running ${d.running}`,
    '',
    `policy ${d.policy.model ?? 'default'}${d.policy.version !== null ? ` v${d.policy.version}` : ''} · dataset \`${d.dataset}\``,
  ].join('\n');
}

/** segmentQuery's current details (markdown). */
export function segmentQueryDetails(d: {
  query: string;
  step: string;
  kind?: string;
  rolloutId?: string;
}): string {
  return [
    `**${d.step}**${d.kind ? ` · ${d.kind}` : ''} · query "${oneLine(d.query, 120)}"`,
    ...(d.rolloutId ? ['', `rollout \`${d.rolloutId}\``] : []),
  ].join('\n');
}

/** A rolloutGroup child's one-line summary: "step 12 · group 3 · sample 4711 (multi-hop)". */
export function groupSummary(d: {
  step: number;
  generation: number;
  group: number;
  sampleId: string;
  ability: string;
}): string {
  return `step ${d.step} · ${d.generation > 0 ? `gen ${d.generation} · ` : ''}group ${d.group} · sample ${oneLine(d.sampleId, 40)} (${d.ability})`;
}

/** A rollout child's one-line summary: "traj 5 · T=1.0 · seed 1234". */
export function trajectorySummary(d: {
  index: number;
  temperature?: number | undefined;
  seed?: number | undefined;
}): string {
  return [
    `traj ${d.index}`,
    ...(d.temperature !== undefined ? [`T=${d.temperature.toFixed(1)}`] : []),
    ...(d.seed !== undefined ? [`seed ${d.seed}`] : []),
  ].join(' · ');
}

/** An evaluateSample child's one-line summary: "sample cat_01 (one-hop)". */
export function sampleSummary(sampleId: string, ability?: string): string {
  return `sample ${oneLine(sampleId, 60)}${ability ? ` (${ability})` : ''}`;
}
