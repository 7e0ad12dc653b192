// "New workflow code" for the chaos suite's deploy scenario: the released workflows, with one change
// to `trainingRun` that adds a command (a memo upsert) at the start of every run of its chain. It is
// guarded by `patched()` as README "Deploying new code during a run" says a change must be: a run
// that started on the old code replays its history unchanged (no marker there, so no memo), and
// the change takes effect from the run's next continue-as-new on.
import { patched, upsertMemo } from '@temporalio/workflow';
import { trainingRun as released, type TrainingRunInput } from '../../../workflows/training-run.js';

export * from '../../../workflows/index.js';

export const DEPLOYED_CHANGE_PATCH = 'segflow-chaos-deployed-change';

export async function trainingRun(input: TrainingRunInput): ReturnType<typeof released> {
  if (patched(DEPLOYED_CHANGE_PATCH)) upsertMemo({ deployedChange: 'chaos-v2' });
  return released(input);
}
