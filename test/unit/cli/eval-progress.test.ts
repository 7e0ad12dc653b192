// `segr eval`'s progress line: how many samples are done, counted over every page, not where the
// current page starts (that stayed 0 through a one-page evaluation: "0/48 planned, 41 evaluated").
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { evaluationProgressLine } from '../../../cli/commands/eval.js';
import type { EvaluationProgress } from '../../../workflows/evaluation.js';

const progress = (p: Partial<EvaluationProgress>): EvaluationProgress => ({
  evalId: 'e',
  total: 48,
  offset: 0,
  evaluated: 0,
  skipped: 0,
  failed: 0,
  running: 0,
  step: 'samples',
  ...p,
});

void test('one page in flight: done counts the evaluated samples, not the page offset', () => {
  assert.equal(
    evaluationProgressLine(progress({ evaluated: 41, running: 4 })),
    'samples: 41/48 done (41 evaluated, 0 already stored), 4 running',
  );
});

void test('a resumed evaluation: samples found stored count as done; outage failures are named', () => {
  assert.equal(
    evaluationProgressLine(
      progress({ total: 500, offset: 200, evaluated: 230, skipped: 150, failed: 3, running: 2 }),
    ),
    'samples: 380/500 done (230 evaluated, 3 of them failed by an outage, 150 already stored), 2 running',
  );
  assert.equal(
    evaluationProgressLine(progress({ total: null, step: 'plan' })),
    'plan: 0/? done (0 evaluated, 0 already stored), 0 running',
  );
});
