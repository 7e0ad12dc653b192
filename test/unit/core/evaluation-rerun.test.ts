// What an evaluation re-run may reuse: a sample's failure, as the evaluation workflow receives it
// (child workflow → activity → the activity's typed error), is an outage (stored as failed and
// evaluated again) or a legitimate outcome (scored); and which settings differ between two runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ActivityFailure,
  ApplicationFailure,
  ChildWorkflowFailure,
  RetryState,
  TerminatedFailure,
  TimeoutFailure,
  TimeoutType,
} from '@temporalio/common';
import type { EvaluationFingerprint } from '../../../core/contracts/index.js';
import { classifySampleFailure, fingerprintDifferences } from '../../../core/evaluation/rerun.js';

/** A rollout child that failed because its policy activity failed with `cause`. */
function rolloutFailed(cause: Error): ChildWorkflowFailure {
  const activity = new ActivityFailure(
    'Activity task failed',
    'policyTurn',
    '3',
    RetryState.MAXIMUM_ATTEMPTS_REACHED,
    'worker@host',
    cause,
  );
  return new ChildWorkflowFailure(
    'default',
    { workflowId: 'e/sample-q1/rollout', runId: 'r' },
    'rollout',
    RetryState.NON_RETRYABLE_FAILURE,
    activity,
  );
}

const app = (type: string, message: string, details?: unknown[]) =>
  ApplicationFailure.create({ type, message, ...(details ? { details } : {}) });

test('infrastructure failures after their retries are outages: 5xx, connection refused, timeouts, terminations, configuration, missing models, unknown types', () => {
  const cases: [Error, string][] = [
    [
      rolloutFailed(
        app(
          'TransientError',
          'policy chat completion was rate limited or unavailable (HTTP 503 from http://vllm:8000/v1/chat/completions)',
          [{ status: 503 }],
        ),
      ),
      'TransientError',
    ],
    [
      rolloutFailed(
        app('TransientError', 'policy server /tokenize could not reach http://vllm:8000: ECONNREFUSED'),
      ),
      'TransientError',
    ],
    [
      rolloutFailed(new TimeoutFailure('activity timeout', undefined, TimeoutType.HEARTBEAT)),
      'Timeout(HEARTBEAT)',
    ],
    [rolloutFailed(new TerminatedFailure('terminated by operator')), 'Terminated'],
    [rolloutFailed(app('ConfigError', 'Serper text search was refused (HTTP 401)')), 'ConfigError'],
    [app('ModelFilesMissing', 'SAM2 video mode needs video_decoder.onnx in /models'), 'ModelFilesMissing'],
    [rolloutFailed(app('ArtifactNotFound', 'frame s3://segflow/f.jpg does not exist')), 'ArtifactNotFound'],
    // vLLM forgot the adapter in a restart: the server, not the sample.
    [
      rolloutFailed(
        app(
          'BadInputError',
          'policy chat completion was rejected with HTTP 404: The model `run-v3` does not exist.',
          [{ status: 404 }],
        ),
      ),
      'BadInputError',
    ],
    [new Error('something unexpected'), 'Error'],
  ];
  for (const [err, type] of cases) {
    const c = classifySampleFailure(err);
    assert.equal(c.infrastructure, true, `${type}: ${c.message}`);
    assert.equal(c.type, type);
  }
  const c = classifySampleFailure(cases[0]![0]);
  assert.match(c.message, /HTTP 503/, 'the message carries the real reason');
});

test("legitimate failures are the sample's or the answer's own: bad input (a 4xx other than 404, a context overflow, bad data), bad media, a blocked URL", () => {
  const cases: Error[] = [
    rolloutFailed(
      app(
        'BadInputError',
        'policy request of 40000 context tokens + 512 new tokens exceeds the server context',
        [{ contextTokens: 40000, maxTokens: 512 }],
      ),
    ),
    rolloutFailed(
      app('BadInputError', 'rejected with HTTP 400: image data URL holds no bytes', [{ status: 400 }]),
    ),
    app('BadInputError', 'keyframe 12 is not one of the sampled frames [0, 4, 7]'),
    rolloutFailed(app('BadMediaError', 'frame 3 is not a readable image')),
    rolloutFailed(app('BlockedUrl', 'http://10.0.0.1/ is a private address')),
  ];
  for (const err of cases) {
    const c = classifySampleFailure(err);
    assert.equal(c.infrastructure, false, c.message);
  }
});

const fp: EvaluationFingerprint = {
  dataset: 's3://segflow/datasets/indexes/abc.json',
  policy: { model: 'policy', version: 1 },
  sampling: { temperature: 0 },
  systemPrompts: null,
  coordinates: null,
  search: { backend: 'serper' },
  settings: null,
  modelsDir: null,
  segmentation: { when: 'reference', imagePrompt: 'box' },
};

test('fingerprintDifferences names each differing setting with its stored and new value; equal fingerprints have none', () => {
  assert.deepEqual(fingerprintDifferences(fp, structuredClone(fp)), []);
  assert.deepEqual(
    fingerprintDifferences(fp, {
      ...fp,
      policy: { model: 'policy', version: 2 },
      search: { backend: 'local' },
      modelsDir: '/models/sam2.1-large',
      settings: { maxTurns: 4 },
    }),
    [
      'modelsDir: null → "/models/sam2.1-large"',
      'policy.version: 1 → 2',
      'search.backend: "serper" → "local"',
      'settings.maxTurns: null → 4',
    ],
  );
  // A missing setting and an empty one are the workers' default either way.
  assert.deepEqual(fingerprintDifferences(fp, { ...fp, settings: {} }), []);
  assert.deepEqual(
    fingerprintDifferences({ ...fp, search: null }, { ...fp, search: { backend: 'serper' } }),
    ['search.backend: null → "serper"'],
  );
});
