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

type ActivityFns = Record<string, (...args: never[]) => Promise<unknown>>;

/**
 * The same activities, each call run in a fresh `activityEnvironment()` as a worker would run it:
 * a test that calls `acts.x(...)` then sees the ApplicationFailure (type, nonRetryable) a workflow
 * sees, not the raw domain error.
 */
export function throughWorkerInterceptors<T extends ActivityFns>(activities: T): T {
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(activities)) {
    wrapped[name] = (...args: never[]) => activityEnvironment().run(fn, ...args);
  }
  return wrapped as T;
}
