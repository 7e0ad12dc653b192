import { test } from 'node:test';
import assert from 'node:assert/strict';
import { flattenMetrics, trackerConfigSchema } from '../../../core/tracking.js';
import { parseTrainingConfig } from '../../../workflows/training-config.js';

test('a step’s metrics flatten to /-joined names of finite numbers, booleans as 0/1', () => {
  const flat = flattenMetrics({
    policyVersion: 3,
    skipped: false,
    weightsSha256: 'ab12',
    trainer: null,
    rollouts: {
      reward: { total: { mean: 0.5, min: 0, max: 1 }, process: null, igr: NaN },
      stopReasons: { answer: 4, 'max turns': 1 },
      answerStatus: { 'parse:error': 2 },
    },
    trained: { reward: { total: { mean: 1 } } },
    timings: { rolloutMs: 1200, updateMs: 0 },
    searches: [1, 2],
  });
  assert.deepEqual(flat, {
    policyVersion: 3,
    skipped: 0,
    'rollouts/reward/total/mean': 0.5,
    'rollouts/reward/total/min': 0,
    'rollouts/reward/total/max': 1,
    'rollouts/stopReasons/answer': 4,
    'rollouts/stopReasons/max turns': 1,
    'rollouts/answerStatus/parse_error': 2,
    'trained/reward/total/mean': 1,
    'timings/rolloutMs': 1200,
    'timings/updateMs': 0,
  });
});

test('an evaluation summary flattens to J, F, J&F overall and per ability, gIoU/cIoU and reward', () => {
  const flat = flattenMetrics({
    evalId: 'eval-1',
    vos: {
      overall: { J: 0.6, F: 0.7, JF: 0.65, count: 2 },
      perAbility: {
        'one-hop': { J: 0.5, F: 0.5, JF: 0.5, count: 1 },
        relational: { J: null, F: null, JF: null, count: 0 },
      },
    },
    reasonSeg: { lisa: { gIoU: 0.4, cIoU: 0.3, counted: 2, skipped: 0 } },
    reward: { outcome: 2.5, perAbility: { 'one-hop': { samples: 1, outcome: 3 } } },
  });
  assert.equal(flat['vos/overall/JF'], 0.65);
  assert.equal(flat['vos/perAbility/one-hop/J'], 0.5);
  assert.equal(flat['vos/perAbility/relational/count'], 0);
  assert.equal('vos/perAbility/relational/J' in flat, false, 'NaN (null in JSON) is left out');
  assert.equal(flat['reasonSeg/lisa/gIoU'], 0.4);
  assert.equal(flat['reward/perAbility/one-hop/outcome'], 3);
  assert.equal('evalId' in flat, false);
});

test('every flattened name is one MLflow accepts', () => {
  const flat = flattenMetrics({ 'a:b': { 'c@d#e': 1, é: 2, '%': { '/': 3 } } });
  for (const name of Object.keys(flat)) assert.match(name, /^[A-Za-z0-9_\-./ ]+$/, name);
  assert.deepEqual(Object.keys(flat), ['a_b/c_d_e', 'a_b/_', 'a_b/_/_']);
});

test('the tracker is off unless a training config names backends', () => {
  const base = { dataset: 's3://b/d.json', initialPolicy: { uri: 's3://b/p/' }, steps: 1 };
  const off = parseTrainingConfig(base);
  assert.ok(off.ok && off.config.tracker === undefined);
  const on = parseTrainingConfig({ ...base, tracker: { backends: ['mlflow', 'tensorboard'] } });
  assert.ok(on.ok);
  assert.deepEqual(on.config.tracker, { backends: ['mlflow', 'tensorboard'], experiment: 'segflow' });
  const bad = parseTrainingConfig({ ...base, tracker: { backends: ['wandb'] } });
  assert.ok(!bad.ok && bad.problems.includes('tracker.backends.0'), bad.ok ? '' : bad.problems);
  assert.deepEqual(trackerConfigSchema.parse({}), { backends: [], experiment: 'segflow' });
});
