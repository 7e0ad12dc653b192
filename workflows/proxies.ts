/**
 * Activity proxies shared by the workflows that ingest media, glue stored JSON and run SAM2
 * (segmentQuery, evaluateSample): one timeout policy per class, each with its reason, and every
 * class retrying an outage for the run's outage tolerance (workflows/retry.ts), as the rollout's
 * calls do: all of them read and write S3, and an S3 or worker outage of minutes must delay a
 * query or an evaluation sample, not fail it. Bad media and bad prompts fail at once (non-retryable).
 */
import { proxyActivities } from '@temporalio/workflow';
import { TaskQueues } from '../core/queues.js';
import type { MediaActivities } from '../activities/media/activities.js';
import type { QueryActivities } from '../activities/query/activities.js';
import type { createSegmentActivities } from '../activities/segment/activities.js';
import { outageRetry } from './retry.js';

type SegmentActivities = ReturnType<typeof createSegmentActivities>;

/** The proxies that turn media into masks: `media` (ffmpeg/sharp on the media queue), `glue`
 * (small JSON reads/writes in S3 on the orchestrator queue) and `segmenter` (SAM2 on the segment queue). */
export type SegmentWork = ReturnType<typeof segmentWork>;

export function segmentWork(outageToleranceSeconds: number) {
  return {
    // Media work: ffmpeg/sharp on CPU. Extracting every frame of a 20-minute video
    // (media.maxVideoSeconds) or drawing its overlay takes tens of minutes, so the limit is hours;
    // every call heartbeats, so a dead worker is noticed in 2 minutes, not hours.
    media: proxyActivities<MediaActivities>({
      taskQueue: TaskQueues.media,
      startToCloseTimeout: '4 hours',
      heartbeatTimeout: '2 minutes',
      retry: outageRetry(outageToleranceSeconds, 30),
    }),
    // Glue reads/writes of small JSON in S3: fast and idempotent, retried freely.
    glue: proxyActivities<QueryActivities>({
      taskQueue: TaskQueues.orchestrator,
      startToCloseTimeout: '5 minutes',
      retry: outageRetry(outageToleranceSeconds, 30),
    }),
    // SAM2 on the segment queue: propagation over a long video (up to media.maxVideoFrames frames)
    // takes hours on a slow device; it heartbeats per frame and resumes from its S3 checkpoint, so a
    // lost worker costs one frame, not the video. A minute without a heartbeat means the worker is gone.
    segmenter: proxyActivities<SegmentActivities>({
      taskQueue: TaskQueues.segment,
      startToCloseTimeout: '6 hours',
      heartbeatTimeout: '1 minute',
      retry: outageRetry(outageToleranceSeconds, 60),
    }),
  };
}
