// The MockActivityEnvironment every activity test uses: it runs the worker's activity interceptors
// (activities/error-interceptor.ts), so a test sees the ApplicationFailure a workflow would see.
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment, type MockActivityEnvironmentOptions } from '@temporalio/testing';
import { activityErrorInterceptors } from '../../activities/error-interceptor.js';

/** A MockActivityEnvironment with the worker's error mapping (plus any `opts.interceptors` after it). */
export function activityEnvironment(
  info?: Partial<Info>,
  opts: MockActivityEnvironmentOptions = {},
): MockActivityEnvironment {
  return new MockActivityEnvironment(info, {
    ...opts,
    interceptors: [activityErrorInterceptors, ...(opts.interceptors ?? [])],
  });
}
