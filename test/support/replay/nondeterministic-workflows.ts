// A deliberately changed stackCheck (different activity order) for the replay test to reject.
import { proxyActivities } from '@temporalio/workflow';

const { otherActivity } = proxyActivities<{ otherActivity(): Promise<void> }>({
  startToCloseTimeout: '1 minute',
});

export async function stackCheck(): Promise<void> {
  await otherActivity();
}
