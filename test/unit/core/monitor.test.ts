// What the Temporal Web UI shows for segflow's workflows: current details, summaries, priorities,
// the registered search attributes, and which control updates a training run refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  evaluationDetails,
  groupSummary,
  oneLine,
  sampleSummary,
  trainingDetails,
  trajectorySummary,
} from '../../../core/monitor/details.js';
import { priorityFor, SearchAttributeKeys, SearchAttributes } from '../../../core/queues.js';
import { configSchema } from '../../../core/config/schema.js';
import { controlProblem, policyHostsProblem } from '../../../workflows/training-run.js';
import { repoRoot } from '../../support/paths.js';

test('training details name the step, phase, groups, last reward components, trainer loss and the metrics key', () => {
  const md = trainingDetails({
    runId: 'r1',
    step: 2,
    steps: 10,
    phase: 'rollouts',
    paused: true,
    stopRequested: false,
    policyVersion: 2,
    generation: 0,
    groupsDone: 3,
    groupsStarted: 4,
    keptGroups: 1,
    last: {
      step: 1,
      policyVersion: 2,
      reward: { total: 1.25, outcome: 0.5, format: 1, process: null, igr: 0.2 },
      keptGroups: 3,
      droppedGroups: 1,
      skipped: false,
      trainer: { loss: 0.01234, pgClipFraction: 0.1, gradNorm: 2 },
      metricsUri: 's3://segflow/runs/r1/steps/1/metrics.json',
    },
  });
  assert.match(md, /\*\*step 3\/10\*\* · phase \*\*rollouts\*\* \(pausing after this step\) · policy v2/);
  assert.match(md, /groups 3\/4 done/);
  assert.match(md, /reward \*\*1\.250\*\* \(outcome 0\.500 · format 1\.000 · process – · IGR 0\.200\)/);
  assert.match(md, /kept 3, dropped 1/);
  assert.match(md, /trainer: loss 0\.0123/);
  assert.match(md, /segr report training --metrics s3:\/\/segflow\/runs\/r1\/steps\//);
  // Between steps (paused, finished) it counts the steps done, not a step in progress.
  assert.match(trainingDetails({ ...baseTraining, step: 10, phase: 'completed' }), /10\/10 steps done/);
  assert.match(trainingDetails({ ...baseTraining, step: 2, phase: 'paused' }), /2\/10 steps done/);
});

const baseTraining = {
  runId: 'r1',
  steps: 10,
  paused: false,
  stopRequested: false,
  policyVersion: 0,
  generation: 0,
  groupsDone: 0,
  groupsStarted: 0,
  keptGroups: 0,
};

test('evaluation details: page, evaluated / skipped / total, running', () => {
  const md = evaluationDetails({
    dataset: 's3://b/datasets/x/index.json',
    step: 'samples',
    page: 2,
    total: 40,
    evaluated: 5,
    skipped: 20,
    running: 4,
    offset: 20,
    policy: { model: 'm', version: 3 },
  } as Parameters<typeof evaluationDetails>[0]);
  assert.match(
    md,
    /\*\*samples\*\* · page 2 · 25\/40 samples \(evaluated 5, skipped 20 already stored\) · running 4/,
  );
  assert.match(md, /policy m v3/);
});

test('child summaries read like the issue asks', () => {
  assert.equal(
    groupSummary({ step: 12, generation: 0, group: 3, sampleId: '4711', ability: 'multi-hop' }),
    'step 12 · group 3 · sample 4711 (multi-hop)',
  );
  assert.equal(trajectorySummary({ index: 5, temperature: 1, seed: 1234 }), 'traj 5 · T=1.0 · seed 1234');
  assert.equal(sampleSummary('cat_01', 'one-hop'), 'sample cat_01 (one-hop)');
  assert.equal(oneLine('a\n  b'.repeat(50), 10).length, 10);
});

test('control updates: resume only when paused, nothing but stop once stopping', () => {
  assert.match(controlProblem('resume', { paused: false, stopRequested: false }, 'r1')!, /r1 is not paused/);
  assert.equal(controlProblem('resume', { paused: true, stopRequested: false }, 'r1'), undefined);
  assert.equal(controlProblem('pause', { paused: false, stopRequested: false }, 'r1'), undefined);
  assert.match(
    controlProblem('pause', { paused: false, stopRequested: true }, 'r1')!,
    /stopping.*cannot be paused/,
  );
  assert.match(controlProblem('resume', { paused: true, stopRequested: true }, 'r1')!, /cannot be resumed/);
  assert.equal(controlProblem('stop', { paused: true, stopRequested: true }, 'r1'), undefined);
});

test('the policyHosts update: a non-empty list of distinct, safe host ids', () => {
  assert.equal(policyHostsProblem(['gpu-0', 'gpu-1']), undefined);
  assert.match(policyHostsProblem([])!, /non-empty list/);
  assert.match(policyHostsProblem('gpu-0')!, /non-empty list/);
  assert.match(policyHostsProblem(['gpu-0', 'gpu-0'])!, /lists a host twice: gpu-0, gpu-0/);
  assert.match(policyHostsProblem(['gpu/0'])!, /policy host id/);
  assert.match(policyHostsProblem(['../x'])!, /policy host id/);
  assert.match(policyHostsProblem([7])!, /policy host id/);
  assert.match(policyHostsProblem(Array.from({ length: 257 }, (_, i) => `h${i}`))!, /257 hosts, at most 256/);
});

test('search attributes: typed keys match the registered set, within the SQL visibility caps, registered by compose', () => {
  for (const key of Object.values(SearchAttributeKeys)) {
    assert.ok(key.name in SearchAttributes, key.name);
    assert.equal(
      SearchAttributes[key.name as keyof typeof SearchAttributes],
      { KEYWORD: 'Keyword', INT: 'Int', DOUBLE: 'Double' }[key.type as string],
    );
  }
  const count = (t: string) => Object.values(SearchAttributes).filter((v) => v === t).length;
  assert.ok(count('Keyword') <= 10 && count('Int') <= 3 && count('Double') <= 3);
  const compose = readFileSync(join(repoRoot, 'infra/compose/compose.yaml'), 'utf8');
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  for (const [name, type] of Object.entries(SearchAttributes)) {
    assert.ok(compose.includes(`${name}=${type}`), `compose registers ${name}`);
    assert.ok(readme.includes(`${name}=${type}`), `README registers ${name}`);
  }
});

test('priority: interactive ahead of evaluation ahead of training by default; fairness by run id', () => {
  const settings = configSchema.parse({}).priority;
  const run = priorityFor(settings, 'interactive', 'q1');
  const evaluation = priorityFor(settings, 'evaluation', 'e1');
  const training = priorityFor(settings, 'training', 'r1');
  assert.ok(run.priorityKey < evaluation.priorityKey && evaluation.priorityKey < training.priorityKey);
  assert.equal(training.fairnessKey, 'r1');
  assert.equal(priorityFor({ ...settings, fairness: false }, 'training', 'r1').fairnessKey, undefined);
  assert.equal(priorityFor(settings, 'training', 'x'.repeat(100)).fairnessKey!.length, 64);
  assert.throws(() => configSchema.parse({ priority: { training: 9 } }));
  assert.equal(configSchema.parse({ priority: { fairness: 'false' } }).priority.fairness, false);
});
