/**
 * Which activities each worker role registers. Activities are built by factories that receive
 * their clients, so tests and workers inject real (local or production) ones.
 */
import type { SegflowConfig } from '../core/config/schema.js';
import type { WorkerRole } from '../core/queues.js';
import { createEmbeddingActivities, encoderFromConfig } from './embeddings/activities.js';
import { createEvaluationActivities } from './evaluation/activities.js';
import { createMediaActivities } from './media/activities.js';
import { createPolicyActivities } from './policy/activities.js';
import { createQueryActivities } from './query/activities.js';
import { createRewardActivities } from './rewards/activities.js';
import { createRolloutActivities } from './rollout/activities.js';
import { createSearchActivities } from './search/activities.js';
import type { PinoLogger } from './runtime/logger.js';
import { createSegmentActivities } from './segment/activities.js';
import { createStackCheckActivities } from './stack-check.js';
import { createPolicySyncActivities, createTrainingActivities } from './training/activities.js';
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
      return {
        ...common,
        ...createRolloutActivities({ store: deps.store, hostId: deps.config.worker.hostId }),
        ...createQueryActivities({ store: deps.store }),
        ...createRewardActivities({ store: deps.store }),
        ...createTrainingActivities({ store: deps.store }),
        ...createEvaluationActivities({ store: deps.store, logger: deps.logger }),
      };
    case 'search': {
      // One ONNX encoder per worker, shared by hybrid search and the IGR similarity.
      const encoder = encoderFromConfig(deps.config.embeddings);
      return {
        ...common,
        ...createSearchActivities({ ...deps, encoder }),
        ...createEmbeddingActivities({ encoder }),
      };
    }
    case 'policy': {
      const policy = createPolicyActivities(deps);
      const sync = createPolicySyncActivities({
        store: deps.store,
        cacheDir: deps.config.training.policyCacheDir,
        hostId: deps.config.worker.hostId,
        policyLoadAdapter: policy.policyLoadAdapter,
        policyReloadWeights: policy.policyReloadWeights,
        policyUnloadAdapter: policy.policyUnloadAdapter,
        keepVersions: deps.config.training.policyCacheKeepVersions,
        fullWeightSync: deps.config.policy.fullWeightSync,
        servedModel: deps.config.policy.model,
      });
      const rollout = createRolloutActivities({
        store: deps.store,
        hostId: deps.config.worker.hostId,
        policyGenerate: policy.policyGenerate,
        policySyncWeights: sync.policySyncWeights,
      });
      return { ...common, ...policy, ...sync, policyTurn: rollout.policyTurn };
    }
    case 'media':
      return {
        ...common,
        ...createMediaActivities({
          store: deps.store,
          toolTimeoutMs: deps.config.media.ffmpegMinTimeoutMs,
          msPerFrame: deps.config.media.ffmpegMsPerFrame,
          video: {
            maxFrames: deps.config.media.maxVideoFrames,
            maxSeconds: deps.config.media.maxVideoSeconds,
          },
        }),
      };
    case 'segment':
      return { ...common, ...createSegmentActivities(deps) };
  }
}
