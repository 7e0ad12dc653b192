// The workflow bundle of the size tests (test/integration/scale.test.ts): the REAL workflows that are
// measured, and stubs of the same name one level below them, so one step of 512 groups does not
// start 8192 rollouts. Each stub returns what the real child returns, built from the same code
// (`storedGroupResult`) on synthetic records of real size; ids with a REAL_* prefix go to the real
// child, so the child itself is measured at its own full width.
import {
  rolloutGroup as realRolloutGroup,
  storedGroupResult,
  type RolloutGroupInput,
  type RolloutGroupResult,
  type StoredGroupResult,
} from '../../workflows/rollout-group.js';
import {
  evaluateSample as realEvaluateSample,
  type EvaluateSampleInput,
} from '../../workflows/evaluation.js';
import type { RolloutInput, RolloutSummary } from '../../workflows/rollout.js';
import { ArtifactKeys } from '../../core/contracts/keys.js';
import {
  fakeRef,
  REAL_GROUP_PREFIX,
  REAL_SAMPLE_EVAL_PREFIX,
  syntheticGroupResult,
  syntheticSummary,
} from './scale-data.js';

export { trainingRun } from '../../workflows/training-run.js';
export { evaluation } from '../../workflows/evaluation.js';
export { segmentQuery } from '../../workflows/segment-query.js';

/** Where the stub rollouts' trajectory is stored (the test writes it; the real reward activities read it). */
export const SCALE_TRAJECTORY_KEY = 'scale-tests/trajectory.json';

/**
 * A group: the real one for REAL_GROUP_PREFIX ids; else what the real one returns for a group whose
 * rewards vary (DAPO keeps it) for one group in four, in a pattern that shifts per generation.
 */
export async function rolloutGroup(
  input: RolloutGroupInput,
): Promise<RolloutGroupResult | StoredGroupResult> {
  if (input.groupId.startsWith(REAL_GROUP_PREFIX)) return realRolloutGroup(input);
  const m = /gen-(\d+)\/group-(\d+)$/.exec(input.groupId);
  const signal = m ? (Number(m[1]) + Number(m[2])) % 4 === 0 : true;
  const sampleId = input.sample?.id ?? input.sampleRecord?.uri ?? input.groupId;
  const full = syntheticGroupResult(
    input.groupId,
    input.artifactPrefix,
    sampleId,
    input.n ?? 8,
    signal,
    input.policy?.version ?? 0,
  );
  if (!input.storeResult) return full;
  return storedGroupResult(
    full,
    fakeRef(ArtifactKeys.groupResult(input.artifactPrefix), 'application/json', 412_905),
  );
}

/** A rollout that answers at once: the third sampled frame as keyframe, the stored synthetic trajectory. */
export async function rollout(input: RolloutInput): Promise<RolloutSummary> {
  const frames = input.sample.frames;
  const keyframe = frames[Math.min(2, frames.length - 1)]!.fid;
  const summary = syntheticSummary(input.trajectoryId, input.artifactPrefix, input.policy?.version ?? 0);
  return {
    ...summary,
    answer: { ...summary.answer, keyframe },
    trajectory: { ...fakeRef(SCALE_TRAJECTORY_KEY), uri: `s3://segflow/${SCALE_TRAJECTORY_KEY}` },
  };
}

/** A sample: the real one for REAL_SAMPLE_EVAL_PREFIX evaluations; else a score at once. */
export async function evaluateSample(
  input: EvaluateSampleInput,
): Promise<{ sampleId: string; JF: number | null; iou: number | null; failed?: boolean }> {
  if (input.evalId.startsWith(REAL_SAMPLE_EVAL_PREFIX)) return realEvaluateSample(input);
  return { sampleId: input.sample.id, JF: 0.61, iou: null };
}
