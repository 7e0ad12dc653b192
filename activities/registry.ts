/**
 * Which activities each worker role registers. Activities are built by factories that receive
 * their clients, so tests and workers inject real (local or production) ones.
 */
import type { SegflowConfig } from '../core/config/schema.js';
import type { WorkerRole } from '../core/queues.js';
import type { PinoLogger } from './runtime/logger.js';
import { createSegmentActivities } from './segment/activities.js';
import { createStackCheckActivities } from './stack-check.js';
import type { ArtifactStore } from './storage/artifact-store.js';

export interface ActivityDeps {
  config: SegflowConfig;
  store: ArtifactStore;
  logger: PinoLogger;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ActivityMap = Record<string, (...args: any[]) => Promise<unknown>>;

/** The activities a role serves on its queue(s). Every role answers the stack check. */
export function activitiesForRole(role: WorkerRole, deps: ActivityDeps): ActivityMap {
  const common = createStackCheckActivities({ store: deps.store, hostId: deps.config.worker.hostId });
  switch (role) {
    case 'orchestrator':
    case 'search':
    case 'media':
    case 'policy':
      return { ...common };
    case 'segment':
      return { ...common, ...createSegmentActivities(deps) };
  }
}
