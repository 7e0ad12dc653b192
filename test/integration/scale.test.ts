// Size tests (issue 20, item 4): the REAL workflows on the real dev stack's Temporal server, at the
// scales users run, with stub activities and stub children one level below the workflow measured
// (test/support/scale-workflows.ts). Every payload of every event of every run is measured from the
// fetched histories (test/support/history-size.ts); each run must stay under Temporal's blob limit
// (2 MiB) and its history under 51,200 events, and under the sizes Temporal warns at (512 KiB,
// 10,240 events). The numbers are printed per workflow type (docs/limits.md).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { TaskQueues, hostQueue } from '../../core/queues.js';
import type { ArtifactRef } from '../../core/artifacts.js';
import { createTrainingActivities } from '../../activities/training/activities.js';
import { createRewardActivities } from '../../activities/rewards/activities.js';
import { createQueryActivities } from '../../activities/query/activities.js';
import type { TrainingConfigInput } from '../../workflows/training-config.js';
import type { TrainingRunResult } from '../../workflows/training-run.js';
import type { StoredGroupResult } from '../../workflows/rollout-group.js';
import { connectNative } from '../../workers/temporal-connection.js';
import { testClient, testConfig, testStore, uniqueId } from '../support/stack.js';
import {
  measureChain,
  measureRun,
  summarise,
  TEMPORAL_BLOB_LIMIT_BYTES,
  TEMPORAL_BLOB_WARN_BYTES,
  TEMPORAL_HISTORY_EVENTS_LIMIT,
  TEMPORAL_HISTORY_EVENTS_WARN,
  type RunSize,
} from '../support/history-size.js';
import {
  contentRef,
  fakeRef,
  REAL_GROUP_PREFIX,
  REAL_SAMPLE_EVAL_PREFIX,
  syntheticEvaluationSummary,
  syntheticFrameSet,
  syntheticRecord,
  syntheticTrajectory,
} from '../support/scale-data.js';
import type { EvaluationResult } from '../../workflows/evaluation.js';
import { SCALE_TRAJECTORY_KEY } from '../support/scale-workflows.js';

const config = testConfig();
const store = testStore(config);
let client: Client;
let connection: NativeConnection;
const workers: Worker[] = [];
let running: Promise<unknown>;
/** What the stub batch assembly received: the groups of each step's batch. */
const batches: { step: number; groups: number }[] = [];
/** What the stub segmenter and overlay were asked for (the video tests). */
const segmented: { frameSet?: ArtifactRef; frames?: string[]; keyframe: number }[] = [];
const overlays: { manifest?: ArtifactRef; masks?: ArtifactRef }[] = [];
/** Samples the stub evaluation plan pages from (20,000, as the scale asks). */
const EVAL_SAMPLES = 20_000;
// Temporal throttles a continue-as-new chain to about one run a second, so the 100 runs of a
// 20,000-sample evaluation (pages of 200) would take minutes of this test's budget. Every run holds
// one page, whatever the dataset's size; the test runs the chain's last 5 runs at full width: the
// run at offset 19,000 evaluates its 200 samples (stub children), the next 3 find theirs stored,
// and the last one aggregates all 20,000. It starts at offset 19,000 with the progress a
// continue-as-new carries, which is exactly how the chain's 96th run starts.
const EVAL_TAIL_OFFSET = 19_000;
/** The 10-minute 30 fps video: its stored frame list, set up before the video tests. */
const VIDEO_FRAMES = 18_000;
let videoFrameSet: ArtifactRef;

const sampleId = (i: number) =>
  `okvos-valid-${contentRef('s', String(i), 'json', 'x').sha256.slice(0, 10)}-${i}`;
const sampledVideoFrames = () =>
  Array.from({ length: 6 }, (_, i) => {
    const fid = Math.round((i * (VIDEO_FRAMES - 1)) / 5);
    return {
      index: fid,
      fid,
      original: contentRef('media/frames', `video/orig/${fid}`, 'jpg', 'image/jpeg'),
      policy: contentRef('media/frames', `video/policy/${fid}`, 'jpg', 'image/jpeg'),
    };
  });

const quiet = { log() {}, trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error };

/**
 * Prints one line per workflow type and asserts, for every run, Temporal's limits (2 MiB a payload,
 * 51,200 events) and, stricter, the sizes it warns at (512 KiB, 10,240 events): at these scales a
 * run must not come near the limits (a 10-minute video's frame list through the workflow was
 * 1.97 MB, under the limit but far over the warning).
 */
function report(scale: string, runs: readonly RunSize[]): void {
  for (const [type, s] of summarise(runs)) {
    console.log(
      `size: ${scale} · ${type}: ${s.runs} run(s), at most ${s.maxEvents} events per run, largest payload ${s.largestPayload} bytes (${s.largestAt})`,
    );
  }
  for (const r of runs) {
    const run = `${r.workflowType} ${r.workflowId} run ${r.runId}`;
    assert.ok(
      r.largestPayload < TEMPORAL_BLOB_LIMIT_BYTES,
      `${run}: payload of ${r.largestPayload} bytes at ${r.largestAt}`,
    );
    assert.ok(r.events < TEMPORAL_HISTORY_EVENTS_LIMIT, `${run}: ${r.events} events`);
    assert.ok(
      r.largestPayload < TEMPORAL_BLOB_WARN_BYTES,
      `${run}: payload of ${r.largestPayload} bytes at ${r.largestAt}, over Temporal's 512 KiB warning size`,
    );
    assert.ok(
      r.events < TEMPORAL_HISTORY_EVENTS_WARN,
      `${run}: ${r.events} events, over Temporal's 10,240 warning`,
    );
  }
}

before(async () => {
  client = await testClient(config);
  connection = await connectNative(config);
  const { code } = await bundleWorkflowCode({
    workflowsPath: fileURLToPath(new URL('../support/scale-workflows.js', import.meta.url)),
    logger: quiet,
  });
  const real = createTrainingActivities({ store });
  const orchestrator = {
    ...real,
    ...createRewardActivities({ store }),
    ...createQueryActivities({ store }),
    async trainingAssembleBatch(input: { step: number; groups?: ArtifactRef[]; trajectories?: unknown[] }) {
      batches.push({ step: input.step, groups: input.groups?.length ?? -1 });
      return fakeRef(`runs/scale/steps/${input.step}/batch.json`, 'application/json', 98_000_000);
    },
    // The evaluation's plan pages through 20,000 samples; the page at EVAL_TAIL_OFFSET is evaluated,
    // the others are planned with their results stored (as a resumed evaluation finds them).
    async evalPlan(input: { evalId: string; offset: number; pageSize: number }) {
      if (input.evalId.startsWith(REAL_SAMPLE_EVAL_PREFIX)) {
        return {
          total: 1,
          format: 'okvos',
          split: 'valid',
          samples: [
            {
              id: sampleId(0),
              ability: 'one-hop',
              ref: contentRef('datasets/samples', 'v', 'json', 'application/json'),
              done: false,
            },
          ],
        };
      }
      const end = Math.min(EVAL_SAMPLES, input.offset + input.pageSize);
      return {
        total: EVAL_SAMPLES,
        format: 'okvos',
        split: 'valid',
        samples: Array.from({ length: end - input.offset }, (_, k) => {
          const i = input.offset + k;
          return {
            id: sampleId(i),
            ability: 'one-hop',
            ref: contentRef('datasets/samples', String(i), 'json', 'application/json'),
            done: input.offset !== EVAL_TAIL_OFFSET,
          };
        }),
      };
    },
    async evalLoadSample() {
      return {
        id: sampleId(0),
        format: 'okvos',
        kind: 'video',
        promptAbility: 'one-hop',
        question: "Please find 'the car that won the 2025 Qatar Grand Prix' in the provided video.",
        frames: sampledVideoFrames().map(({ fid, original, policy }) => ({ fid, original, policy })),
        frameSet: videoFrameSet,
        width: 1920,
        height: 1080,
      };
    },
    async evalScoreSample(input: { sampleId: string }) {
      return { sampleId: input.sampleId, JF: 0.58, iou: null };
    },
    async evalAggregate(input: { evalId: string }) {
      return {
        summary: fakeRef(`evals/${input.evalId}/summary.json`),
        metrics: syntheticEvaluationSummary(input.evalId, EVAL_SAMPLES),
      };
    },
    async evalReport(input: { evalId: string }) {
      return {
        html: fakeRef(`evals/${input.evalId}/report.html`, 'text/html'),
        json: fakeRef(`evals/${input.evalId}/report.json`),
      };
    },
  };
  const make = (taskQueue: string, activities: object, withWorkflows = false) =>
    Worker.create({
      connection,
      namespace: config.temporal.namespace,
      taskQueue,
      activities,
      ...(withWorkflows ? { workflowBundle: { code } } : {}),
    });
  workers.push(
    await make(TaskQueues.orchestrator, orchestrator, true),
    await make(TaskQueues.search, {
      async searchQuerySimilarity(input: { references: string[] }) {
        return { scores: input.references.map((_, i) => 0.5 + i / 100) };
      },
      async searchPaidCalls() {
        return { total: 0, byBackend: {} };
      },
    }),
    await make(TaskQueues.trainer, {
      async update_policy(_batch: ArtifactRef, policy: { uri: string; version: number }) {
        const version = policy.version + 1;
        return {
          policy: {
            uri: `s3://segflow/policies/scale/v${version}/`,
            version,
            kind: 'lora',
            weightsSha256: contentRef('w', String(version), 'bin', 'x').sha256,
          },
          metrics: {
            loss: 0.1,
            pgLoss: 0.1,
            pgClipFraction: 0.01,
            dualClipFraction: 0,
            approxKl: 0.001,
            kl: null,
            entropy: 1.2,
            gradNorm: 0.7,
            updates: 2,
            trajectories: 8192,
            responseTokens: 6_000_000,
            truncated: 3,
            learningRate: 1e-6,
            logProbShift: { positive: 0.01, negative: -0.01 },
            rollout: { logProbDiffMean: null, logProbDiffMax: null, comparedTokens: 0 },
            reused: false,
            durationMs: 1000,
          },
        };
      },
    }),
    await make(TaskQueues.media, {
      async mediaIngest() {
        return {
          kind: 'video',
          video: contentRef('media/videos', 'race', 'mp4', 'video/mp4'),
          probe: {
            width: 1920,
            height: 1080,
            fps: 30,
            frames: VIDEO_FRAMES,
            codec: 'h264',
            durationSec: 600,
            container: 'mov,mp4,m4a,3gp,3g2,mj2',
          },
        };
      },
      async mediaSampleFrames() {
        const frames = sampledVideoFrames();
        return { total: VIDEO_FRAMES, indices: frames.map((f) => f.index), frames };
      },
      async mediaExtractFrames() {
        return { frameSet: videoFrameSet, frames: VIDEO_FRAMES, width: 1920, height: 1080 };
      },
      async mediaOverlayVideo(input: { manifest?: ArtifactRef; masks?: ArtifactRef }) {
        overlays.push(input);
        return contentRef('media/videos', 'overlay', 'mp4', 'video/mp4');
      },
    }),
    await make(TaskQueues.segment, {
      async segmentVideo(input: {
        frameSet?: ArtifactRef;
        frames?: string[];
        keyframe: number;
        outputPrefix: string;
      }) {
        segmented.push({ frameSet: input.frameSet, frames: input.frames, keyframe: input.keyframe });
        return {
          manifest: fakeRef(`${input.outputPrefix}/manifest.json`, 'application/json', 4_100_000),
          numFrames: VIDEO_FRAMES,
          width: 1920,
          height: 1080,
          emptyFrames: 12,
          resumedFrom: 0,
          framesComputed: VIDEO_FRAMES,
        };
      },
    }),
    await make(hostQueue(TaskQueues.policy, 'local'), {
      async policySyncWeights(input: { name: string }) {
        return {
          hostId: 'local',
          path: '/cache/x',
          files: 3,
          downloaded: true,
          served: input.name,
          how: 'adapter',
        };
      },
    }),
  );
  running = Promise.all(workers.map((w) => w.run()));
});

after(async () => {
  for (const w of workers) w.shutdown();
  await running;
  await connection?.close();
  await client?.connection.close();
  store.client.destroy();
});

/** A prepared dataset index of `n` samples (one record stored: the index is what sampling reads). */
async function syntheticDataset(n: number): Promise<{ index: string; record: ArtifactRef }> {
  const record = await store.putJson(
    `scale-tests/records/${uniqueId('rec')}.json`,
    syntheticRecord('okvos-train-0a49f5265b-2'),
  );
  const index = await store.putJson(`scale-tests/indexes/${uniqueId('idx')}.json`, {
    schema: 'segflow.dataset/1',
    format: 'okvos',
    split: 'train',
    source: 'scale-test',
    options: { frames: 6, patchFactor: 32, coordinates: { kind: 'qwen3vl', scale: 1000 }, anchor: true },
    samples: Array.from({ length: n }, (_, i) => ({
      id: `okvos-train-${contentRef('s', String(i), 'json', 'x').sha256.slice(0, 10)}-${i}`,
      ability: 'one-hop',
      ref: record,
    })),
  });
  return { index: index.uri, record };
}

void test(
  'a training step of 512 prompts x 16 trajectories stays within Temporal limits',
  { timeout: 180_000 },
  async () => {
    const { index } = await syntheticDataset(600);
    const runId = uniqueId('scale-train');
    const trainingConfig: TrainingConfigInput = {
      dataset: index,
      initialPolicy: { uri: 's3://segflow/policies/scale/v0/', model: 'policy' },
      steps: 1,
      promptsPerStep: 512,
      groupSize: 16,
    };
    const started = Date.now();
    const handle = await client.workflow.start('trainingRun', {
      workflowId: runId,
      taskQueue: TaskQueues.orchestrator,
      args: [{ runId, config: trainingConfig }],
    });
    const result = (await handle.result()) as TrainingRunResult;
    console.log(`size: training step ran in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.equal(result.status, 'completed');
    assert.equal(result.policy.version, 1);
    assert.deepEqual(batches.at(-1), { step: 0, groups: 512 });
    const runs = await measureChain(client, runId, handle.firstExecutionRunId);
    report('512 prompts x 16 trajectories', runs);
  },
);

void test(
  'a step that needs 4 DAPO generation batches continues as new between them',
  { timeout: 60_000 },
  async () => {
    const { index } = await syntheticDataset(40);
    const runId = uniqueId('scale-dapo');
    // One group in four has a learning signal (the stub's pattern): 8 prompts need 4 batches.
    const handle = await client.workflow.start('trainingRun', {
      workflowId: runId,
      taskQueue: TaskQueues.orchestrator,
      args: [
        {
          runId,
          config: {
            dataset: index,
            initialPolicy: { uri: 's3://segflow/policies/scale/v0/', model: 'policy' },
            steps: 1,
            promptsPerStep: 8,
            groupSize: 4,
            dapo: { enabled: true, maxGenerationBatches: 0 },
            generationBatchesPerRun: 1,
          } satisfies TrainingConfigInput,
        },
      ],
    });
    const result = (await handle.result()) as TrainingRunResult;
    assert.equal(result.status, 'completed');
    assert.equal(result.policy.version, 1);
    assert.deepEqual(batches.at(-1), { step: 0, groups: 8 });
    const runs = await measureChain(client, runId, handle.firstExecutionRunId);
    assert.equal(runs.length, 4, 'one workflow run per generation batch');
    const metrics = await store.getJson<{
      generationBatches: number;
      keptGroups: number;
      droppedGroups: number;
      rollouts: { groups: number; trajectories: number };
      trained: { groups: number; trajectories: number };
    }>(`runs/${runId}/steps/0/metrics.json`);
    assert.equal(metrics.generationBatches, 4);
    assert.equal(metrics.keptGroups, 8);
    assert.equal(metrics.droppedGroups, 24);
    assert.deepEqual(metrics.rollouts, { ...metrics.rollouts, groups: 32, trajectories: 128 });
    assert.deepEqual(metrics.trained, { ...metrics.trained, groups: 8, trajectories: 32 });
    report('8 prompts x 4 generation batches, one per run', runs);
  },
);

void test('one rolloutGroup of 16 trajectories (real rewards) stays small', { timeout: 60_000 }, async () => {
  const { record } = await syntheticDataset(1);
  const trajectory = await store.putJson(SCALE_TRAJECTORY_KEY, syntheticTrajectory('t', 's'));
  assert.equal(trajectory.uri, `s3://segflow/${SCALE_TRAJECTORY_KEY}`, 'the stub rollouts name this URI');
  const groupId = `${REAL_GROUP_PREFIX}-${uniqueId('g')}`;
  const handle = await client.workflow.start('rolloutGroup', {
    workflowId: groupId,
    taskQueue: TaskQueues.orchestrator,
    args: [
      {
        groupId,
        sampleRecord: record,
        storeResult: true,
        n: 16,
        artifactPrefix: `scale-tests/groups/${groupId}`,
        policy: { version: 0, model: 'policy', sampling: { temperature: 1, seed: 7 } },
      },
    ],
  });
  const result = (await handle.result()) as StoredGroupResult;
  assert.equal(result.rewards.length, 16);
  assert.equal(result.tally.trajectories, 16);
  const stored = await store.getJson<{ trajectories: unknown[] }>(result.stored.uri);
  assert.equal(stored.trajectories.length, 16);
  report('16 trajectories', [await measureRun(client, groupId, handle.firstExecutionRunId)]);
});

void test(
  'an evaluation of 20,000 samples: every run of its continue-as-new chain holds one page',
  { timeout: 120_000 },
  async () => {
    const evalId = uniqueId('scale-eval');
    const started = Date.now();
    const handle = await client.workflow.start('evaluation', {
      workflowId: evalId,
      taskQueue: TaskQueues.orchestrator,
      args: [
        {
          evalId,
          dataset: 's3://segflow/datasets/indexes/sha256/okvos-valid.json',
          concurrency: 16,
          progress: {
            offset: EVAL_TAIL_OFFSET,
            evaluated: 0,
            skipped: EVAL_TAIL_OFFSET,
            failed: 0,
            policy: { model: 'policy', version: 12 },
          },
        },
      ],
    });
    const result = (await handle.result()) as EvaluationResult;
    console.log(`size: evaluation (5 runs) ran in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.equal(result.evaluated, 200, 'the page at offset 19,000 was evaluated');
    assert.equal(result.skipped, EVAL_SAMPLES - 200, 'the pages after it were planned and found stored');
    assert.equal(result.metrics.dataset.samples, EVAL_SAMPLES);
    const runs = await measureChain(client, evalId, handle.firstExecutionRunId);
    assert.equal(runs.length, (EVAL_SAMPLES - EVAL_TAIL_OFFSET) / 200, 'one workflow run per page of 200');
    report(
      '20,000 samples, pages of 200 (the last 5 runs of the chain: 1 page evaluated by 200 stub children, 3 stored, 1 stored + aggregate)',
      runs,
    );
  },
);

void test(
  'a 10-minute 30 fps video (18,000 frames): the frame list and masks travel by reference',
  { timeout: 60_000 },
  async () => {
    videoFrameSet = await store.putJson(
      `scale-tests/frame-sets/${uniqueId('set')}.json`,
      syntheticFrameSet(VIDEO_FRAMES),
    );
    const queryId = uniqueId('scale-query');
    const handle = await client.workflow.start('segmentQuery', {
      workflowId: queryId,
      taskQueue: TaskQueues.orchestrator,
      args: [{ media: '/videos/qatar-2025-race.mp4', query: 'the car that won the 2025 Qatar Grand Prix' }],
    });
    const result = (await handle.result()) as { masks?: ArtifactRef; overlay?: ArtifactRef };
    assert.ok(result.masks && result.overlay);
    assert.equal(
      segmented.at(-1)?.frameSet?.uri,
      videoFrameSet.uri,
      'the segmenter got the frame list by reference',
    );
    assert.equal(segmented.at(-1)?.frames, undefined);
    assert.equal(
      segmented.at(-1)?.keyframe,
      sampledVideoFrames()[2]!.fid,
      'the keyframe located in the list',
    );
    assert.ok(
      overlays.at(-1)?.manifest && !overlays.at(-1)?.masks,
      'the overlay streams the masks from the manifest',
    );
    const runs = [await measureRun(client, queryId, handle.firstExecutionRunId)];

    const evalId = uniqueId(REAL_SAMPLE_EVAL_PREFIX);
    const evalHandle = await client.workflow.start('evaluation', {
      workflowId: evalId,
      taskQueue: TaskQueues.orchestrator,
      args: [{ evalId, dataset: 's3://segflow/datasets/indexes/sha256/okvos-video.json' }],
    });
    await evalHandle.result();
    assert.equal(segmented.at(-1)?.frameSet?.uri, videoFrameSet.uri);
    runs.push(await measureRun(client, `${evalId}/sample-${sampleId(0)}`));
    report('18,000 frames', runs);
  },
);
