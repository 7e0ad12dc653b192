/**
 * Maps every activity failure once, at the worker: whatever an activity throws leaves as
 * `activityFailure(err)` (errors.ts): a SegflowError becomes an ApplicationFailure with its type,
 * retryability and next retry delay; Temporal's own failures (a cancellation) pass through. The
 * activities themselves just throw. Registered in workers/run.ts; activity tests run under the
 * same interceptor (test/support/activity-env.ts).
 *
 * Outside a worker (the CLI, a benchmark, another activity calling one directly) nothing maps:
 * the caller sees the SegflowError itself, with the same message.
 */
import type {
  ActivityExecuteInput,
  ActivityInboundCallsInterceptor,
  ActivityInterceptorsFactory,
  Next,
} from '@temporalio/worker';
import { activityFailure } from './errors.js';

export class ActivityErrorInterceptor implements ActivityInboundCallsInterceptor {
  async execute(
    input: ActivityExecuteInput,
    next: Next<ActivityInboundCallsInterceptor, 'execute'>,
  ): Promise<unknown> {
    try {
      return await next(input);
    } catch (err) {
      throw activityFailure(err);
    }
  }
}

/** For `interceptors.activity` of a Worker or a MockActivityEnvironment. */
export const activityErrorInterceptors: ActivityInterceptorsFactory = () => ({
  inbound: new ActivityErrorInterceptor(),
});
