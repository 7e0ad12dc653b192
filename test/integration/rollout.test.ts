// Rollouts and segment queries on the real dev stack: a real worker process, the local corpus and a
// Search-R1 `/retrieve` server, a local OpenAI-compatible server scripted to emit real Seg-ReSearch
// turns, and SAM2-contract ONNX models generated for the test.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { TaskQueues } from '../../core/queues.js';
import { scoreTrajectory } from '../../core/rewards/score.js';
import { gateOutcome } from '../../core/rewards/gate.js';
import type { SegmentQueryResult } from '../../workflows/segment-query.js';
import { type Trajectory } from '../../workflows/rollout.js';
import { DEFAULT_OUTAGE_TOLERANCE_SECONDS } from '../../workflows/retry.js';
import { assertOutageTolerant, retryWindows } from '../support/retry-policies.js';
import { startCuttableProxy } from '../support/cuttable-proxy.js';
import {
  holdLaterTurns,
  laterTurnRequests,
  startFakePolicyServer,
  type FakePolicyServer,
  type WireMessage,
} from '../servers/openai-server.js';
import { startRetrieval } from '../servers/search-servers.js';
import type { LocalServer } from '../servers/http-server.js';
import { writeSam2TestModels } from '../support/onnx-models.js';
import { sharedData } from '../support/paths.js';
import {
  startWorkerProcess,
  testClient,
  testConfig,
  testStore,
  uniqueId,
  type WorkerProcess,
} from '../support/stack.js';

const config = testConfig();
let client: Client;
let policy: FakePolicyServer;
let retrieval: LocalServer;
let holdingLaterTurns = false;
let worker: WorkerProcess | undefined;
let workerEnv: NodeJS.ProcessEnv;
const tmp = mkdtempSync(join(tmpdir(), 'segflow-rollout-it-'));

function textOf(m: WireMessage | undefined): string {
  if (!m) return '';
  return typeof m.content === 'string' ? m.content : m.content.map((p) => p.text ?? '').join('');
}

/** What the scripted policy writes: turn k of a Seg-ReSearch trajectory, chosen by markers in the question. */
export function segResearchScript(
  messages: WireMessage[],
  _model = '',
  body: Record<string, unknown> = {},
): string {
  const user = textOf(messages[1]);
  const fids = [...user.matchAll(/frame (\d+)/g)].map((m) => Number(m[1]));
  const turn = messages.filter((m) => m.role === 'assistant').length;
  const key = fids[1] ?? fids[0] ?? 0;
  const query = /find '([^']*)'/.exec(user)?.[1] ?? 'the target';
  const answer = (box: string) =>
    `<thinking>The target is in the middle of the frame.</thinking>\n<answer> {"bbox_2d": ${box}, "point_2d": [450, 500]} </answer>`;
  const keyframe = (k: number) =>
    `<thinking>Frame ${k} shows it best.</thinking>\n<keyframe> ${k} </keyframe>`;
  if (user.includes('[no-tags]')) return 'I believe it is the red one.';
  if (user.includes('[broken-json]'))
    return turn === 0 ? keyframe(key) : '<thinking>ok</thinking><answer> {"bbox_2d": [1, 2, </answer>';
  if (user.includes('[unsampled-keyframe]'))
    return turn === 0 ? keyframe(9999) : answer('[200, 250, 700, 800]');
  if (user.includes('[out-of-range]')) return turn === 0 ? keyframe(key) : answer('[0, 0, 1500, 900]');
  if (turn === 0) {
    return `<thinking>I need outside knowledge about ${query}.</thinking>\n<search> {"name": "text_search", "query": "${query} ${user.length}"} </search>`;
  }
  if (turn === 1) return keyframe(key);
  // Sampled with an odd seed, the scripted policy misses the target: groups get reward variance.
  return answer(
    typeof body.seed === 'number' && body.seed % 2 === 1 ? '[10, 10, 60, 60]' : '[200, 250, 700, 800]',
  );
}

async function restartWorker(extra: NodeJS.ProcessEnv = {}): Promise<void> {
  if (worker) {
    worker.child.kill('SIGTERM');
    await worker.exited;
  }
  worker = await startWorkerProcess([], { ...workerEnv, ...extra });
}

/**
 * Starts a query with every turn after the first held unanswered at the policy server and SIGKILLs
 * the worker once one arrives there: turn 1 and the search are done, and the worker dies while turn 2
 * generates (its heartbeat stops). Killing it on a signal seen between turns raced the scripted
 * server, which can finish every later turn before the kill lands (CI failed on it once).
 */
async function killWorkerDuringTurnTwo<T>(start: () => Promise<T>): Promise<T> {
  const seen = laterTurnRequests(policy);
  holdingLaterTurns = true;
  try {
    const started = await start();
    const deadline = Date.now() + 120_000;
    while (laterTurnRequests(policy) === seen) {
      assert.ok(Date.now() < deadline, 'no second turn reached the policy server');
      await new Promise((r) => setTimeout(r, 20));
    }
    worker!.child.kill('SIGKILL');
    await worker!.exited;
    worker = undefined;
    return started;
  } finally {
    holdingLaterTurns = false;
  }
}

before(async () => {
  client = await testClient(config);
  policy = await startFakePolicyServer({
    flavor: 'vllm',
    script: segResearchScript,
    // a turn after the first held unanswered (the host dies while it generates), while a test asks
    refuse: holdLaterTurns(() => holdingLaterTurns),
  });
  retrieval = await startRetrieval({
    documents: [
      { id: '1', contents: 'Lando Norris\nLando Norris drove the orange McLaren car in 2025.' },
      { id: '2', contents: 'Bedroom\nA bedroom with a bed and a lamp.' },
    ],
    text: (d) => String(d.contents),
  });
  const models = await writeSam2TestModels(join(tmp, 'models'));
  workerEnv = {
    SEGFLOW_POLICY_URL: `${policy.url}/v1`,
    SEGFLOW_SEGMENT_MODELS_DIR: models,
    SEGFLOW_SEARCH_CORPUS: sharedData('local_kb', 'text_corpus.jsonl'),
    SEGFLOW_SEARCH_IMAGE_CORPUS: sharedData('local_kb', 'image_corpus.jsonl'),
    SEGFLOW_SEARCH_IMAGE_DIR: sharedData('local_kb', 'images'),
    RETRIEVER_URL: `${retrieval.url}/retrieve`,
  };
  await restartWorker();
});

after(async () => {
  if (worker) {
    worker.child.kill('SIGTERM');
    await worker.exited;
  }
  await policy.close();
  await retrieval.close();
  await client.connection.close();
});

function startQuery(
  media: string,
  query: string,
  extra: Record<string, unknown> = {},
  workflowId = uniqueId('it-query'),
) {
  return client.workflow.start('segmentQuery', {
    taskQueue: TaskQueues.orchestrator,
    workflowId,
    args: [{ media, query, frames: 6, ...extra }],
    workflowExecutionTimeout: '5 minutes',
  });
}

async function runQuery(
  media: string,
  query: string,
  extra: Record<string, unknown> = {},
  workflowId = uniqueId('it-query'),
): Promise<SegmentQueryResult> {
  return (await (await startQuery(media, query, extra, workflowId)).result()) as SegmentQueryResult;
}

test(
  'an image query completes: search → keyframe → answer → SAM2 mask and overlay in S3',
  { timeout: 180_000 },
  async () => {
    const before = policy.requests.filter((r) => r.path === '/v1/chat/completions').length;
    const r = await runQuery(sharedData('images', 'cars.jpg'), 'the car that won the race');
    assert.equal(r.kind, 'image');
    assert.equal(r.answer.status, 'ok', JSON.stringify(r.answer));
    assert.equal(r.stopReason, 'model_chose_to_finish');
    assert.equal(r.rollout.turns, 3);
    assert.equal(r.rollout.numSearch, 1);
    assert.equal(r.searchLog[0]?.backend, 'local');
    assert.ok(r.masks && r.overlay && r.grounded, 'mask, overlay and grounding present');
    const store = testStore(config);
    assert.ok(await store.head(r.masks.uri), 'mask PNG in S3');
    assert.ok(await store.head(r.overlay.uri), 'overlay PNG in S3');
    // The stored trajectory is what the server said, turn by turn (stop strings kept).
    const traj = await store.getJson<Trajectory>(r.rollout.trajectory.uri);
    const calls = policy.requests.filter((q) => q.path === '/v1/chat/completions').slice(before);
    assert.equal(calls.length, 3);
    calls.forEach((call, i) => {
      const messages = (JSON.parse(call.body) as { messages: WireMessage[] }).messages;
      assert.equal(
        traj.turns[i]!.text,
        segResearchScript(messages, '', JSON.parse(call.body) as Record<string, unknown>),
      );
    });
    assert.ok(traj.turns[0]!.text.endsWith('</search>'));
    assert.match(traj.turns[0]!.observation!.content, /^<information>1\. \(Title: /);
    assert.match(
      traj.messages[traj.messages.length - 2]!.content,
      /Here is the high-res version of your selected frame: <image>/,
    );
    assert.equal(traj.messages.at(-2)!.images?.length, 1, 'the keyframe observation carries the 864² image');
    store.client.destroy();
  },
);

test(
  'a video query completes: masks for every frame and an overlay video in S3',
  { timeout: 240_000 },
  async () => {
    const clip = join(tmp, 'bedroom-24.mp4');
    execFileSync('ffmpeg', [
      '-v',
      'error',
      '-y',
      '-i',
      sharedData('videos', 'bedroom.mp4'),
      '-frames:v',
      '24',
      '-c:v',
      'libx264',
      '-pix_fmt',
      'yuv420p',
      clip,
    ]);
    const r = await runQuery(clip, 'the bed in the bedroom');
    assert.equal(r.kind, 'video');
    assert.equal(r.answer.status, 'ok', JSON.stringify(r.answer));
    assert.ok(r.masks && r.overlay);
    const store = testStore(config);
    const manifest = await store.getJson<{ frames: { mask: string }[] }>(r.masks.uri);
    assert.equal(manifest.frames.length, 24);
    for (const f of manifest.frames) assert.ok(await store.head(f.mask), `${f.mask} exists`);
    const overlay = await store.head(r.overlay.uri);
    assert.equal(overlay?.contentType, 'video/mp4');
    store.client.destroy();
  },
);

for (const [marker, status] of [
  ['[no-tags]', 'no_keyframe'],
  ['[broken-json]', 'no_answer'],
  ['[unsampled-keyframe]', 'keyframe_not_sampled'],
  ['[out-of-range]', 'coordinates_out_of_range'],
] as const) {
  test(
    `malformed output ${marker} ends the rollout with a reason and zero outcome reward, not a failed workflow`,
    { timeout: 120_000 },
    async () => {
      const r = await runQuery(sharedData('images', 'truck.jpg'), `the truck ${marker}`);
      assert.equal(r.answer.status, status, JSON.stringify(r.answer));
      assert.equal(r.masks, undefined);
      const store = testStore(config);
      const traj = await store.getJson<Trajectory>(r.rollout.trajectory.uri);
      store.client.destroy();
      const reward = gateOutcome(
        scoreTrajectory({
          response: traj.responseText,
          groundTruth: {
            '0': { bbox_2d: [200, 250, 700, 800], point_2d: [450, 500], area: 1, max_conn_area: 1 },
          },
        }),
        r.answer.status,
      );
      assert.equal(reward.outcome, 0, reward.reasons.join('\n'));
    },
  );
}

test(
  "no activity of a query or its rollout gives up inside the outage tolerance: the keyframe's, the ingest's, SAM2's and the overlay's S3 work retries like the policy and search",
  { timeout: 180_000 },
  async () => {
    const workflowId = uniqueId('it-query');
    const r = await runQuery(sharedData('images', 'cars.jpg'), 'the car that won the race', {}, workflowId);
    assert.equal(r.answer.status, 'ok', JSON.stringify(r.answer));
    assertOutageTolerant(
      await client.workflow.getHandle(`${workflowId}/rollout`).fetchHistory(),
      DEFAULT_OUTAGE_TOLERANCE_SECONDS,
      ['policyTurn', 'searchTool', 'mediaKeyframe', 'saveTrajectory'],
      'rollout',
    );
    assertOutageTolerant(
      await client.workflow.getHandle(workflowId).fetchHistory(),
      DEFAULT_OUTAGE_TOLERANCE_SECONDS,
      ['mediaIngest', 'mediaSampleFrames', 'segmentImage', 'mediaOverlayImage', 'querySaveResult'],
      'segmentQuery',
    );
    // a query's own tolerance reaches every call it makes, its rollout's too: each outlasts 20 s and
    // gives up within one capped wait after it
    const short = uniqueId('it-query-tolerance');
    await runQuery(
      sharedData('images', 'cars.jpg'),
      'the car that won the race',
      { outageToleranceSeconds: 20 },
      short,
    );
    for (const [id, label] of [
      [short, 'segmentQuery'],
      [`${short}/rollout`, 'rollout'],
    ] as const) {
      const windows = retryWindows(await client.workflow.getHandle(id).fetchHistory());
      assert.ok(windows.length >= 4, `${label}: ${windows.length} activities`);
      for (const w of windows)
        assert.ok(w.seconds >= 20 && w.seconds < 80, `${label}: ${w.name} retries for ${w.seconds} s`);
    }
  },
);

test(
  'S3 unreachable from the workers for 12 s as a query starts: its ingest waits the outage out and the query completes',
  { timeout: 180_000 },
  async () => {
    const s3 = await startCuttableProxy(config.s3.endpoint);
    try {
      await restartWorker({ SEGFLOW_S3_ENDPOINT: s3.url });
      await s3.cut();
      const handle = await startQuery(
        sharedData('images', 'cars.jpg'),
        'the car that won the race',
        {},
        uniqueId('it-query-s3-outage'),
      );
      await new Promise((r) => setTimeout(r, 12_000));
      await s3.restore();
      const r = (await handle.result()) as SegmentQueryResult;
      assert.equal(r.answer.status, 'ok', JSON.stringify(r.answer));
      assert.ok(r.masks && r.overlay, 'mask and overlay stored');
      // the ingest met the outage: it succeeded only after more attempts than the old proxy made (3)
      const events = (await handle.fetchHistory()).events ?? [];
      const ingest = events.findIndex(
        (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'mediaIngest',
      );
      const started = events.find(
        (e) =>
          Number(e.activityTaskStartedEventAttributes?.scheduledEventId) === Number(events[ingest]?.eventId),
      );
      const attempt = started?.activityTaskStartedEventAttributes?.attempt ?? 0;
      console.log(`# mediaIngest succeeded at attempt ${attempt}, after the 12 s outage`);
      assert.ok(attempt > 3, `mediaIngest succeeded at attempt ${attempt}: the outage outlasted 3 attempts`);
      assert.match(
        started?.activityTaskStartedEventAttributes?.lastFailure?.message ?? '',
        /S3|ECONNREFUSED|connect/i,
        'the attempts before failed on S3',
      );
    } finally {
      await restartWorker();
      await s3.close();
    }
  },
);

test(
  'SIGKILL of the worker after the search step: the rollout finishes, nothing is repeated',
  { timeout: 240_000 },
  async () => {
    await restartWorker({ SEGFLOW_SEARCH_BACKEND: 'retrieval', SEGFLOW_SEARCH_CACHE: 'false' });
    const retrievalBefore = retrieval.requests.length;
    const workflowId = uniqueId('it-kill-query');
    const handle = await killWorkerDuringTurnTwo(() =>
      startQuery(sharedData('images', 'groceries.jpg'), 'the orange car driver', {}, workflowId),
    );
    await restartWorker({ SEGFLOW_SEARCH_BACKEND: 'retrieval', SEGFLOW_SEARCH_CACHE: 'false' });
    const r = (await handle.result()) as SegmentQueryResult;
    assert.equal(r.answer.status, 'ok');
    assert.equal(r.rollout.numSearch, 1);
    assert.equal(r.searchLog[0]?.backend, 'retrieval');
    assert.equal(retrieval.requests.length - retrievalBefore, 1, 'the finished search was not repeated');
    // One trajectory object and one mask object: deterministic keys, no duplicates.
    const store = testStore(config);
    const keys: string[] = [];
    for await (const o of store.list(`queries/${workflowId}/`)) keys.push(o.key);
    assert.deepEqual(keys.sort(), [
      `queries/${workflowId}/mask.png`,
      `queries/${workflowId}/result.json`,
      `queries/${workflowId}/trajectory.json`,
    ]);
    store.client.destroy();
    await restartWorker();
  },
);

test(
  'the host a trajectory is pinned to is replaced mid-trajectory: the next turn runs on another host and the trajectory says so',
  { timeout: 240_000 },
  async () => {
    const env = { SEGFLOW_SEARCH_BACKEND: 'retrieval', SEGFLOW_SEARCH_CACHE: 'false' };
    await restartWorker({ ...env, SEGFLOW_WORKER_HOST_ID: 'gpu-a' });
    const workflowId = uniqueId('it-host-fallback');
    // gpu-a's pod dies while turn 2, pinned to it, generates, and is replaced by one with another host id
    const handle = await killWorkerDuringTurnTwo(() =>
      client.workflow.start('segmentQuery', {
        taskQueue: TaskQueues.orchestrator,
        workflowId,
        args: [
          {
            media: sharedData('images', 'groceries.jpg'),
            query: 'the orange car driver',
            frames: 6,
            hostAffinitySeconds: 5,
          },
        ],
        workflowExecutionTimeout: '5 minutes',
      }),
    );
    await restartWorker({ ...env, SEGFLOW_WORKER_HOST_ID: 'gpu-b' });
    const r = (await handle.result()) as SegmentQueryResult;
    assert.equal(r.answer.status, 'ok');
    const store = testStore(config);
    const trajectory = await store.getJson<{ hostFallbacks?: { turn: number; from: string; to: string }[] }>(
      `queries/${workflowId}/trajectory.json`,
    );
    store.client.destroy();
    // turn 2 lost its host (its heartbeat stopped), its retry waited on gpu-a's queue in vain and
    // ran on gpu-b; turn 3 is pinned to gpu-b and needs no fallback
    assert.deepEqual(trajectory.hostFallbacks, [{ turn: 2, from: 'gpu-a', to: 'gpu-b' }]);
    await restartWorker();
  },
);

test(
  'rolloutGroup: n child rollouts with deterministic ids, hierarchical rewards with real IGR, GRPO advantages',
  { timeout: 240_000 },
  async () => {
    const store = testStore(config);
    const media = (await client.workflow.execute('segmentQuery', {
      taskQueue: TaskQueues.orchestrator,
      workflowId: uniqueId('it-group-media'),
      args: [{ media: sharedData('images', 'cars.jpg'), query: 'warm-up [no-tags]' }],
    })) as SegmentQueryResult;
    const traj = await store.getJson<Trajectory>(media.rollout.trajectory.uri);
    const frameImages = traj.messages[1]!.images!;
    const groupId = uniqueId('it-group');
    const result = (await client.workflow.execute('rolloutGroup', {
      taskQueue: TaskQueues.orchestrator,
      workflowId: groupId,
      args: [
        {
          groupId,
          n: 4,
          concurrency: 2,
          sample: {
            id: 'cars-1',
            question: "Please find 'the winning car' in the provided image.",
            ability: 'one-hop',
            // The first user message of the warm-up holds the sampled frame (policy copy); the
            // keyframe tool resizes the same image.
            frames: [{ fid: 0, policy: frameImages[0]!, original: frameImages[0]! }],
            groundTruth: {
              '0': { bbox_2d: [200, 250, 700, 800], point_2d: [450, 500], area: 1, max_conn_area: 0.8 },
            },
            steps: ['search which car won the race', 'find the winning car in the image'],
          },
          policy: { sampling: { temperature: 1, seed: 100 } },
          artifactPrefix: `runs/${groupId}`,
        },
      ],
      workflowExecutionTimeout: '5 minutes',
    })) as {
      trajectories: {
        summary: { trajectoryId: string };
        reward: { total: number; igr: number | null; outcome: number; format: number };
        advantage: number;
      }[];
      meanReward: number;
      rewardStd: number;
    };
    assert.deepEqual(
      result.trajectories.map((t) => t.summary.trajectoryId),
      [0, 1, 2, 3].map((i) => `${groupId}/traj-${i}`),
    );
    const totals = result.trajectories.map((t) => t.reward.total);
    // Even seeds hit the box (outcome 1+1+1+0.8), odd seeds miss it (outcome 0.8: the keyframe term).
    assert.deepEqual(
      result.trajectories.map((t) => t.reward.outcome),
      [3.8, 0.8, 3.8, 0.8],
    );
    for (const t of result.trajectories) {
      assert.equal(t.reward.format, 1);
      assert.equal(typeof t.reward.igr, 'number', 'IGR came from the real embedding model');
    }
    const mean = totals.reduce((a, b) => a + b, 0) / 4;
    assert.ok(Math.abs(result.meanReward - mean) < 1e-9);
    assert.ok(result.trajectories[0]!.advantage > 0 && result.trajectories[1]!.advantage < 0);
    assert.ok(Math.abs(result.trajectories.reduce((a, t) => a + t.advantage, 0)) < 1e-9);
    for (const t of result.trajectories) {
      assert.ok(await store.head(`runs/${groupId}/traj/${result.trajectories.indexOf(t)}/trajectory.json`));
    }
    store.client.destroy();
  },
);

test(
  'cancelling a segmentQuery stops its in-flight policy call (the HTTP request is aborted)',
  { timeout: 120_000 },
  async () => {
    // A policy server that never answers, and records when the client hangs up.
    const { createServer } = await import('node:http');
    let received = 0;
    let aborted = 0;
    const stuck = createServer((req, res) => {
      received++;
      req.resume();
      res.on('close', () => {
        if (!res.writableEnded) aborted++;
      });
    });
    await new Promise<void>((r) => stuck.listen(0, '127.0.0.1', r));
    const port = (stuck.address() as { port: number }).port;
    await restartWorker({
      SEGFLOW_POLICY_URL: `http://127.0.0.1:${port}/v1`,
      SEGFLOW_POLICY_TIMEOUT_MS: '600000',
    });
    try {
      const workflowId = uniqueId('it-cancel');
      const handle = await client.workflow.start('segmentQuery', {
        taskQueue: TaskQueues.orchestrator,
        workflowId,
        args: [{ media: sharedData('images', 'truck.jpg'), query: 'the truck' }],
      });
      const deadline = Date.now() + 60_000;
      while (received === 0) {
        assert.ok(Date.now() < deadline, 'the policy call never started');
        await new Promise((r) => setTimeout(r, 100));
      }
      const t0 = Date.now();
      await handle.cancel();
      await assert.rejects(handle.result(), /cancel/i);
      const rolloutDesc = await client.workflow.getHandle(`${workflowId}/rollout`).describe();
      assert.equal(rolloutDesc.status.name, 'CANCELLED');
      while (aborted === 0) {
        assert.ok(Date.now() - t0 < 30_000, 'the in-flight HTTP request was not aborted');
        await new Promise((r) => setTimeout(r, 100));
      }
      console.log(`policy request aborted ${Date.now() - t0} ms after the cancel`);
    } finally {
      stuck.closeAllConnections();
      stuck.close();
      await restartWorker();
    }
  },
);

test(
  'segr run: progress, answer, search log and Web UI link printed; mask and overlay written to --out',
  { timeout: 180_000 },
  async () => {
    const { execFile } = await import('node:child_process');
    const { promisify } = await import('node:util');
    const { existsSync } = await import('node:fs');
    const { repoRoot } = await import('../support/paths.js');
    const out = join(tmp, 'run-out');
    // Asynchronously: the scripted policy server lives in this process and must keep answering.
    const res = await promisify(execFile)(
      process.execPath,
      [
        join(repoRoot, 'bin/segr.js'),
        'run',
        '--media',
        sharedData('images', 'cars.jpg'),
        '--query',
        'the car that won the race',
        '--policy-url',
        `${policy.url}/v1`,
        '--models',
        workerEnv.SEGFLOW_SEGMENT_MODELS_DIR!,
        '--out',
        out,
      ],
      { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, ...workerEnv, SEGFLOW_LOG_LEVEL: 'warn' } },
    );
    assert.match(res.stdout, /answer: keyframe 0, bbox_2d \[200,250,700,800\]/);
    assert.match(res.stdout, /search log \(1\):\n {2}text_search "the car that won the race \d+" via local/);
    assert.match(res.stdout, /web ui: http:\/\/127\.0\.0\.1:\d+\/namespaces\/.+\/workflows\/query-/);
    // The live step list (polled every 400 ms, so fast steps may be skipped).
    assert.match(
      res.stderr,
      / {2}\d\d:\d\d:\d\d {2}step: (ingest|sample|rollout|ground|segment|overlay|done)/,
    );
    assert.ok(existsSync(join(out, 'mask.png')) && existsSync(join(out, 'overlay.png')));

    // A folder of frames: one mask per frame, named like the frame it belongs to.
    const frames = join(tmp, 'frames-in');
    const { mkdirSync, readdirSync } = await import('node:fs');
    mkdirSync(frames, { recursive: true });
    execFileSync('ffmpeg', [
      '-v',
      'error',
      '-y',
      '-i',
      sharedData('videos', 'bedroom.mp4'),
      '-frames:v',
      '8',
      '-start_number',
      '10',
      join(frames, '%05d.jpg'),
    ]);
    const outFrames = join(tmp, 'run-out-frames');
    await promisify(execFile)(
      process.execPath,
      [
        join(repoRoot, 'bin/segr.js'),
        'run',
        '--media',
        frames,
        '--query',
        'the bed',
        '--policy-url',
        `${policy.url}/v1`,
        '--models',
        workerEnv.SEGFLOW_SEGMENT_MODELS_DIR!,
        '--out',
        outFrames,
      ],
      { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, ...workerEnv, SEGFLOW_LOG_LEVEL: 'warn' } },
    );
    assert.deepEqual(
      readdirSync(join(outFrames, 'masks')).sort(),
      readdirSync(frames)
        .map((f) => f.replace('.jpg', '.png'))
        .sort(),
    );
  },
);
