// The Temporal Web UI as a run monitor: a short training run started with `segr train start` (the
// real CLI, workers and Python trainer on the dev stack), paused after its first step; headless
// Chromium opens the run's page (current details: step, phase, last reward components, trainer
// loss) and one of its rollouts (activity summaries: turns, the search query, the keyframe), and
// saves PNG screenshots to out/screenshots/ (docs/screenshots/ holds committed copies). Also: the
// children's search attributes find "the rollouts of run r1" and their stop reasons, `train start`
// with a running id attaches or refuses, and `resume` on a run that is not paused is refused.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import type { TrainingRunResult, TrainingStatus } from '../../workflows/training-run.js';
import { startFakePolicyServer, type FakePolicyServer, type WireMessage } from '../servers/openai-server.js';
import { startRetrieval } from '../servers/search-servers.js';
import type { LocalServer } from '../servers/http-server.js';
import { repoRoot } from '../support/paths.js';
import {
  startWorkerProcess,
  testClient,
  testConfig,
  testStore,
  uniqueId,
  type WorkerProcess,
  stopProcesses,
} from '../support/stack.js';
import {
  prepareTrainingDataset,
  startTrainerProcess,
  uploadTinyModel,
  waitTrainingStatus,
} from '../support/training.js';

const CHROMIUM = '/usr/bin/chromium';
const config = testConfig();
const store = testStore(config);
const tmp = mkdtempSync(join(tmpdir(), 'segflow-webui-it-'));
const shots = join(repoRoot, 'out', 'screenshots');
let client: Client;
let policy: FakePolicyServer;
let retrieval: LocalServer;
let worker: WorkerProcess | undefined;
let trainer: WorkerProcess | undefined;
let dataset: string;
let initialPolicy: string;

function segr(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin/segr.js'), ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function textOf(m: WireMessage | undefined): string {
  if (!m) return '';
  return typeof m.content === 'string' ? m.content : m.content.map((p) => p.text ?? '').join('');
}

/** Search first, then a keyframe, then an answer that hits for even seeds and misses for odd ones. */
function script(messages: WireMessage[], _model: string, body: Record<string, unknown>): string {
  const user = textOf(messages[1]);
  const fid = [...user.matchAll(/frame (\d+)/g)].map((m) => Number(m[1]))[0] ?? 0;
  const turn = messages.filter((m) => m.role === 'assistant').length;
  if (turn === 0)
    return `<thinking>I need to look this up.</thinking>\n<search> {"name": "text_search", "query": "which car won the race"} </search>`;
  if (turn === 1) return `<thinking>Frame ${fid} shows it.</thinking>\n<keyframe> ${fid} </keyframe>`;
  const odd = typeof body.seed === 'number' && body.seed % 2 === 1;
  return `<thinking>There it is.</thinking>\n<answer> {"bbox_2d": ${odd ? '[10, 10, 60, 60]' : '[200, 250, 700, 800]'}, "point_2d": [450, 500]} </answer>`;
}

before(async () => {
  client = await testClient(config);
  policy = await startFakePolicyServer({ flavor: 'vllm', script });
  retrieval = await startRetrieval({
    documents: [{ id: '1', contents: 'Winning car\nThe orange car won the race.' }],
    text: (d) => String(d.contents),
  });
  const [w, t, datasetUri, modelUri] = await Promise.all([
    startWorkerProcess([], {
      SEGFLOW_POLICY_URL: `${policy.url}/v1`,
      // the fake server loads full versions by name through its LoRA endpoint, as the nano server does
      SEGFLOW_POLICY_FULL_WEIGHT_SYNC: 'by-name',
      RETRIEVER_URL: `${retrieval.url}/retrieve`,
      SEGFLOW_TRAINING_POLICY_CACHE_DIR: join(tmp, 'policy-cache'),
    }),
    startTrainerProcess({
      SEGFLOW_TRAINER_WORK_DIR: join(tmp, 'trainer-work'),
      SEGFLOW_TRAINER_THREADS: '1',
      SEGFLOW_TRAINER_HEARTBEAT_SECONDS: '1',
    }),
    prepareTrainingDataset(store, join(tmp, 'dataset'), [
      { id: 'cars', image: 'cars.jpg', query: 'the car that won the race', ability: 'one-hop' },
    ]),
    uploadTinyModel(store, join(tmp, 'tiny'), `test/webui/${uniqueId('tiny')}`),
  ]);
  worker = w;
  trainer = t;
  dataset = datasetUri;
  initialPolicy = modelUri;
});

after(async () => {
  await stopProcesses([worker, trainer]);
  await Promise.all([policy.close(), retrieval.close()]);
  await client.connection.close();
  store.client.destroy();
});

const waitStatus = (runId: string, until: (s: TrainingStatus) => boolean, what: string) =>
  waitTrainingStatus(client, runId, until, what, { pollMs: 200 });

/** Visibility is eventually consistent: polls a list query until it finds `min` workflows. */
async function listIds(query: string, min: number): Promise<string[]> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ids: string[] = [];
    for await (const w of client.workflow.list({ query })) ids.push(w.workflowId);
    if (ids.length >= min || Date.now() > deadline) return ids;
    await new Promise((r) => setTimeout(r, 500));
  }
}

test(
  'the Web UI shows a training run as a run monitor and a rollout as a readable event history',
  {
    timeout: 300_000,
    skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent (apt-get install -y chromium)`,
  },
  async () => {
    const runId = uniqueId('it-webui');
    const cfgFile = join(tmp, 'train.json');
    writeFileSync(
      cfgFile,
      JSON.stringify({
        rollout: { search: { backend: 'retrieval' } },
        trainer: { heartbeatTimeoutSeconds: 3, maxLength: 2048 },
      }),
    );
    const startArgs = [
      'train',
      'start',
      '--dataset',
      dataset,
      '--initial-policy',
      initialPolicy,
      '--steps',
      '3',
      '--group-size',
      '2',
      '--prompts-per-step',
      '1',
      '--seed',
      '3',
      '--lr',
      '0.005',
      '--config-json',
      cfgFile,
      '--id',
      runId,
    ];
    const started = segr(...startArgs);
    assert.equal(started.status, 0, started.stderr);
    assert.equal(started.stdout.trim(), runId);
    // Idempotent start: the same flags attach, different ones are refused with the difference.
    const again = segr(...startArgs);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /already running with this config: attached/);
    const other = segr(...startArgs.map((a) => (a === '3' ? '5' : a)));
    assert.notEqual(other.status, 0);
    assert.match(other.stderr, /already running with a different config \(.*steps: 3 ≠ 5/);

    await waitStatus(runId, (s) => s.recent.length >= 1, 'step 0 done');
    const refused = segr('train', 'resume', runId);
    assert.notEqual(refused.status, 0, 'resume of a run that is not paused is refused');
    assert.match(refused.stderr, /is not paused: nothing to resume/);
    assert.equal(segr('train', 'pause', runId).status, 0);
    await waitStatus(runId, (s) => s.phase === 'paused', 'paused');

    // The children carry the run id and step: a saved view finds the rollouts of this run.
    const rollouts = await listIds(
      `SegflowRunId = "${runId}" AND WorkflowType = "rollout" AND SegflowStep = 0`,
      2,
    );
    assert.equal(rollouts.length, 2, 'both trajectories of step 0 are found by run id and step');
    const finished = await listIds(
      `SegflowRunId = "${runId}" AND WorkflowType = "rollout" AND SegflowStep = 0 AND SegflowStopReason = "model_chose_to_finish" AND SegflowAnswerStatus = "ok"`,
      2,
    );
    assert.equal(finished.length, 2, 'stop reason and answer status are searchable');
    assert.deepEqual(await listIds(`WorkflowId = "${runId}" AND SegflowPhase = "paused"`, 1), [runId]);

    // What the UI's "Current details" panel shows comes from the built-in metadata query.
    const meta = await client.workflow
      .getHandle(runId)
      .query<{ currentDetails?: string }>('__temporal_workflow_metadata');
    assert.match(meta.currentDetails ?? '', /steps done\*\* · phase \*\*paused\*\*/, JSON.stringify(meta));
    assert.match(meta.currentDetails ?? '', /trainer: loss/);

    const { chromium } = await import('playwright-core');
    const browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'segflow-chromium-')), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1400, height: 1000 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
      ],
    });
    mkdirSync(shots, { recursive: true });
    const ns = encodeURIComponent(config.temporal.namespace);
    const page = await browser.newPage();
    const open = async (workflowId: string, tab: string, shot: string, expect: RegExp[]) => {
      await page.goto(
        `${config.temporal.uiUrl}/namespaces/${ns}/workflows/${encodeURIComponent(workflowId)}`,
        { waitUntil: 'load' },
      );
      // The workflow page's tabs are links: …/<runId>/user-metadata, …/<runId>/history.
      await page.locator(`a[href*="/${tab}"]`).first().click();
      const deadline = Date.now() + 30_000;
      let text = '';
      while (Date.now() < deadline) {
        text = await page.locator('body').innerText();
        if (expect.every((re) => re.test(text))) break;
        await page.waitForTimeout(500);
      }
      await page.screenshot({ path: join(shots, shot), fullPage: false });
      for (const re of expect) assert.match(text, re, `${shot}: the page shows ${re}`);
      assert.ok(statSync(join(shots, shot)).size > 20_000, 'a real screenshot');
    };
    try {
      // The UI (2.54) shows the run's priority and fairness key and a "Current Details" panel; the
      // details' text itself is asserted through the metadata query above.
      await open(runId, 'user-metadata', 'training-run.png', [/Priority\s*4/, /Fairness/, /Current Details/]);
      await open(rollouts.sort()[0]!, 'history', 'rollout.png', [
        /traj 0 · T=1\.0 · seed/,
        /turn 1 @ any host/,
        /text_search: "which car won the race"/,
        /keyframe of turn 2/,
      ]);
    } finally {
      await browser.close();
    }

    assert.equal(segr('train', 'resume', runId).status, 0);
    const result = (await client.workflow.getHandle(runId).result()) as TrainingRunResult;
    assert.equal(result.status, 'completed');
    const refusedAfter = segr('train', 'pause', runId);
    assert.notEqual(refusedAfter.status, 0, 'a closed run takes no more updates');
  },
);
