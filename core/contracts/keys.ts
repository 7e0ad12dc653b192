/**
 * Where things live: every S3 key and every child workflow id segflow builds, in one module (as
 * dust's lib/workflow_ids.ts does for workflow ids). Each is a pure function of ids and counters,
 * so a retried activity, a re-run child or a resumed run finds the same object or the same child.
 *
 * ```
 * runs/<run>/steps/<k>/batch.json | metrics.json       a training step's batch and metrics
 * runs/<run>/search-usage/<call>.json                  the paid-call ledger (also keyed by evaluation ids)
 * runs/<run>/steps/<k>/groups/gen-<g>-group-<j>/traj/<i>/trajectory.json
 * policies/<run>/v<k>/                                 a policy version (written by the Python trainer):
 *   segflow-policy.json                                its manifest, created once (the commit point)
 *   attempts/<attempt>/…                               one update attempt's files; the manifest names the
 *                                                      committed attempt (`filesDir`), the others are orphans
 * runs/<run>/trainer/v<k>/attempts/<attempt>/          that attempt's optimizer and RNG state
 * policies/<run>/latest.json                           the run's newest version
 * evals/<eval>/samples/<sample>.json | <sample>/…      one sample's result and its artifacts
 * evals/<eval>/evaluation.json                         its fingerprint and generation (what re-runs may reuse)
 * evals/<eval>/summary.json | report.html | report.json
 * evals/by-dataset/<datasetSha>/<eval>.json            one line per evaluation of a dataset
 * queries/<query>/…                                    a segmentQuery's masks, overlay and result
 * ```
 * The policy-version key is also built by the Python trainer: it reads the template below from the
 * generated `trainer/segflow_trainer/schemas/keys.json` (scripts/export-contracts.js).
 */

/** Templates shared with the Python trainer (`{name}` placeholders, Python `str.format` syntax). */
export const KeyTemplates = {
  policyVersion: 'policies/{runId}/v{version}/',
  /** The optimizer and RNG state the trainer saved with a version (each attempt in its own folder below). */
  trainerState: 'runs/{runId}/trainer/v{version}/',
  /**
   * One update attempt's files of a version, and its trainer state: a folder per attempt (`attempt`:
   * the Temporal attempt number and random hex), so an attempt that timed out but still runs (a
   * zombie) never writes where its retry did. Only the attempt whose manifest was created is read.
   */
  policyAttempt: 'policies/{runId}/v{version}/attempts/{attempt}/',
  trainerStateAttempt: 'runs/{runId}/trainer/v{version}/attempts/{attempt}/',
} as const;

/** The folder of a version (and of its trainer state) that holds one folder per update attempt. */
export const POLICY_ATTEMPTS_DIR = 'attempts/';

/** A sample id as one path segment: injective (percent-encoding), so two ids never share a key. */
export function sampleKeySegment(sampleId: string): string {
  return encodeURIComponent(sampleId).replace(/\./g, '%2E').replace(/\*/g, '%2A');
}

export const RunKeys = {
  /** The paid-call ledger of a run or evaluation (search role): one object per paid call. */
  searchUsage: (runId: string) => `runs/${runId}/search-usage/`,
  batch: (runId: string, step: number) => `runs/${runId}/steps/${step}/batch.json`,
  metrics: (runId: string, step: number) => `runs/${runId}/steps/${step}/metrics.json`,
  /** The run's config and its state after the last finished step: what `segr train resume` continues from. */
  state: (runId: string) => `runs/${runId}/state.json`,
  /** A rolloutGroup's artifacts (its trajectories under `traj/<i>`). */
  group: (runId: string, step: number, generation: number, j: number) =>
    `runs/${runId}/steps/${step}/groups/gen-${generation}-group-${j}`,
} as const;

export const PolicyKeys = {
  /** A version's folder (a prefix ending in "/"). */
  version: (runId: string, version: number) =>
    KeyTemplates.policyVersion.replace('{runId}', runId).replace('{version}', String(version)),
  latest: (runId: string) => `policies/${runId}/latest.json`,
} as const;

export const EvalKeys = {
  samplesPrefix: (evalId: string) => `evals/${evalId}/samples/`,
  sampleResult: (evalId: string, sampleId: string) =>
    `evals/${evalId}/samples/${sampleKeySegment(sampleId)}.json`,
  samplePrefix: (evalId: string, sampleId: string) => `evals/${evalId}/samples/${sampleKeySegment(sampleId)}`,
  record: (evalId: string) => `evals/${evalId}/evaluation.json`,
  summary: (evalId: string) => `evals/${evalId}/summary.json`,
  reportHtml: (evalId: string) => `evals/${evalId}/report.html`,
  reportJson: (evalId: string) => `evals/${evalId}/report.json`,
  byDatasetPrefix: (datasetSha: string) => `evals/by-dataset/${datasetSha}/`,
  byDataset: (datasetSha: string, evalId: string) => `evals/by-dataset/${datasetSha}/${evalId}.json`,
} as const;

export const QueryKeys = {
  root: (queryId: string) => `queries/${queryId}`,
  result: (queryId: string) => `queries/${queryId}/result.json`,
} as const;

/** Artifacts under any rollout's prefix (a group trajectory, a query, an evaluated sample). */
export const ArtifactKeys = {
  trajectory: (prefix: string) => `${prefix}/trajectory.json`,
  groupTrajectory: (groupPrefix: string, i: number) => `${groupPrefix}/traj/${i}`,
  /** A rolloutGroup's full result (its trajectories' summaries, rewards, advantages). */
  groupResult: (groupPrefix: string) => `${groupPrefix}/group.json`,
  imageMask: (prefix: string) => `${prefix}/mask.png`,
} as const;

/**
 * Child workflow ids. Deterministic, so a parent that replays after a crash attaches to the child
 * it started instead of starting another.
 */
export const WorkflowIds = {
  rolloutGroup: (runId: string, step: number, generation: number, j: number) =>
    `${runId}/step-${step}/gen-${generation}/group-${j}`,
  groupTrajectory: (groupId: string, i: number) => `${groupId}/traj-${i}`,
  evaluateSample: (evalId: string, sampleId: string) => `${evalId}/sample-${sampleId}`,
  /** The one rollout of a segmentQuery or an evaluateSample. */
  rolloutOf: (parentWorkflowId: string) => `${parentWorkflowId}/rollout`,
  /** Default ids of CLI-started workflows: `<kind>-<ISO time without ":" and ".">`. */
  stamped: (kind: 'query' | 'eval' | 'stack-check', at: Date) =>
    `${kind}-${at.toISOString().replace(/[:.]/g, '-')}`,
  /** The workflow a schedule starts (Temporal appends the scheduled time). */
  scheduled: (scheduleId: string) => `${scheduleId}-run`,
} as const;
