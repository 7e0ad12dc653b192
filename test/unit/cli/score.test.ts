// `segr score` on real logged step records reproduces the logged reward terms exactly.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ScoreLine } from '../../../cli/commands/score.js';
import { repoRoot, sharedData } from '../../support/paths.js';

interface LoggedRecord {
  score: number;
  process_score: number;
  iou_score: number;
  box_l1_score: number;
  point_l1_score: number;
  keyframe_score: number;
  num_search: number;
}

/** What `segr score` prints per line (the test reads the CLI's output as a user would). */
type Scored = ScoreLine;

const file = sharedData('segresearch_step_records', 'step1.jsonl');
const records = readFileSync(file, 'utf8')
  .split('\n')
  .filter((l) => l.trim() !== '')
  .map((l) => JSON.parse(l) as LoggedRecord);

const run = spawnSync(process.execPath, [join(repoRoot, 'bin', 'segr.js'), 'score', file], {
  encoding: 'utf8',
});
const scored = run.stdout
  .split('\n')
  .filter((l) => l.trim() !== '')
  .map((l) => JSON.parse(l) as Scored);

void test('segr score exits 0 and prints one line per record (128)', () => {
  assert.equal(run.status, 0, run.stderr);
  assert.equal(records.length, 128);
  assert.equal(scored.length, records.length);
});

void test('iou, box, point and keyframe terms equal the logged ones exactly, for every record', () => {
  records.forEach((rec, i) => {
    const s = scored[i];
    assert.ok(s, `record ${i}`);
    assert.equal(s.iou, rec.iou_score, `record ${i} iou`);
    assert.equal(s.box, rec.box_l1_score, `record ${i} box`);
    assert.equal(s.point, rec.point_l1_score, `record ${i} point`);
    assert.equal(s.frame, rec.keyframe_score, `record ${i} keyframe`);
    assert.equal(s.numSearch, rec.num_search, `record ${i} num_search`);
    assert.equal(s.igr, null);
  });
});

void test('outcome equals score − process_score for every record', () => {
  records.forEach((rec, i) => {
    const s = scored[i];
    assert.ok(s);
    // The reference sums iou + box + point + frame + process left to right, so adding the logged
    // process score to our outcome must give the logged score bit for bit ...
    assert.equal(s.outcome + rec.process_score, rec.score, `record ${i}: outcome + process_score`);
    // ... which makes outcome and score − process_score equal up to the one rounding of that subtraction.
    assert.ok(Math.abs(s.outcome - (rec.score - rec.process_score)) <= 4.5e-16, `record ${i}: outcome`);
  });
});

void test('format and TPR are consistent with the logged process score of every record', () => {
  let withSteps = 0;
  let withoutSteps = 0;
  records.forEach((rec, i) => {
    const s = scored[i];
    assert.ok(s);
    assert.ok(s.format === 0 || s.format === 1);
    // Search sample: P = 0.5·(IGR + TPR) with IGR ∈ {0, 1}. Sample without steps: P = F.
    const searchSample = rec.process_score === 0.5 * (0 + s.tpr) || rec.process_score === 0.5 * (1 + s.tpr);
    const plainSample = rec.process_score === s.format;
    assert.ok(
      searchSample || plainSample,
      `record ${i}: process ${rec.process_score}, F ${s.format}, TPR ${s.tpr}`,
    );
    if (searchSample) withSteps++;
    else withoutSteps++;
  });
  // Most records are search samples with a non-trivial TPR; make sure the check is not vacuous.
  assert.ok(withSteps > 100, `search samples: ${withSteps}`);
  assert.ok(records.some((r, i) => r.process_score > 0 && (scored[i]?.tpr ?? 0) > 0.9));
  assert.ok(withoutSteps >= 0);
});

void test('unusable lines are reported with their line number and skipped; NaN fields are accepted', () => {
  const dir = mkdtempSync(join(tmpdir(), 'segflow-score-'));
  try {
    const bad = join(dir, 'records.jsonl');
    const good = JSON.stringify({ output: '<keyframe>0</keyframe>', gts: '{}' }).replace(
      '}',
      ', "score": NaN}',
    );
    writeFileSync(bad, `${good}\n{"output": 3, "gts": "{}"}\nnot json\n`);
    const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'segr.js'), 'score', bad], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 1);
    assert.equal(r.stdout.trim().split('\n').length, 1);
    assert.match(r.stderr, /line 2: field "output" \(the decoded response\) must be a string/);
    assert.match(r.stderr, /line 3: not JSON \(Expecting value: line 1 column 1 \(char 0\)\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
