/**
 * Activity proxies shared by the workflows that ingest media, glue stored JSON and run SAM2
 * (segmentQuery, evaluateSample): one retry/timeout policy per class, each with its reason.
 */
import { proxyActivities } from '@temporalio/workflow';
import { TaskQueues } from '../core/queues.js';
import type { MediaActivities } from '../activities/media/activities.js';
import type { QueryActivities } from '../activities/query/activities.js';
import type { createSegmentActivities } from '../activities/segment/activities.js';

type SegmentActivities = ReturnType<typeof createSegmentActivities>;

// Media work: ffmpeg/sharp on CPU. Extracting every frame of a 20-minute video (media.maxVideoSeconds)
// or drawing its overlay takes tens of minutes, so the limit is hours; every call heartbeats, so a
// dead worker is noticed in 2 minutes, not hours. Bad media fails fast as a non-retryable error.
export const mediaWork = proxyActivities<MediaActivities>({
  taskQueue: TaskQueues.media,
  startToCloseTimeout: '4 hours',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '2 seconds', maximumAttempts: 3 },
});

// Glue reads/writes of small JSON in S3: fast and idempotent, retried freely.
export const queryGlue = proxyActivities<QueryActivities>({
  taskQueue: TaskQueues.orchestrator,
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '1 second', maximumAttempts: 10 },
});

// SAM2 on the segment queue: propagation over a long video (up to media.maxVideoFrames frames) takes
// hours on a slow device; it heartbeats per frame and resumes from its S3 checkpoint, so a lost
// worker costs one frame, not the video. A minute without a heartbeat means the worker is gone.
export const segmenter = proxyActivities<SegmentActivities>({
  taskQueue: TaskQueues.segment,
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumAttempts: 5 },
});
