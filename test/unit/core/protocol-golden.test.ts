// Parsing and reward rules against the Python reference on generated text
// (test/golden/protocol_reference.py → test/fixtures/golden/protocol.json).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseKeyframeAction, parseSearchAction } from '../../../core/protocol/actions.js';
import { firstOneLineAnswer } from '../../../core/protocol/scan.js';
import { segZeroReward, SEGZERO_DEFAULTS } from '../../../core/protocol/segzero.js';
import { pyJsonLoads, type PyJsonValue } from '../../../core/pycompat/pyjson.js';
import { pyFloatRepr } from '../../../core/pycompat/pyrepr.js';
import {
  allTextSearchQueries,
  firstTextSearchQuery,
  formatTerm,
  numSearch,
  outcomeTerms,
  parseGroundTruth,
  searchStepCount,
  taperingProcessReward,
} from '../../../core/rewards/terms.js';
import { hierarchical } from '../../../core/rewards/settings.js';
import { loadGolden } from './golden-masks.js';

interface Golden {
  groundTruth: string;
  segZeroGroundTruth: string;
  pyjson: ({ input: string; ok: true; value: string } | { input: string; ok: false; error: string })[];
  rewards: {
    response: string;
    format: number;
    searchSteps: number;
    tpr: number;
    iou: number;
    box: number;
    point: number;
    frame: number;
    numSearch: number;
    firstQuery: string | null;
    allQueries: string[];
    oneLineAnswer: string | null;
    searchAction: null | { observation: string } | { tool: string; query: string } | { crash: true };
    keyframeAction: null | { valid: false } | { valid: true; frame: number };
  }[];
  segZero: { response: string; soft: number[]; strict: number[] }[];
}

const golden = loadGolden<Golden>('protocol.json');

/** The same canonical form as `canon` in protocol_reference.py. */
function canon(v: PyJsonValue): string {
  if (v === null) return 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return 'nan';
    if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
    if (Number.isInteger(v)) return BigInt(v).toString();
    return pyFloatRepr(v);
  }
  if (typeof v === 'string') return asciiJson(v);
  if (Array.isArray(v)) return `[${v.map(canon).join(',')}]`;
  return `{${Object.keys(v)
    .map((k) => `${asciiJson(k)}:${canon(v[k] ?? null)}`)
    .join(',')}}`;
}

function asciiJson(s: string): string {
  return JSON.stringify(s).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

void test('json.loads: values and error messages equal CPython on crafted and random inputs', () => {
  assert.ok(golden.pyjson.length >= 300);
  for (const c of golden.pyjson) {
    const r = pyJsonLoads(c.input);
    if (c.ok) {
      assert.ok(r.ok, `${JSON.stringify(c.input)} should parse, got ${r.ok ? '' : r.error.message}`);
      assert.equal(canon(r.value), c.value, JSON.stringify(c.input));
    } else {
      assert.ok(!r.ok, `${JSON.stringify(c.input)} should fail with ${c.error}`);
      assert.equal(r.error.message, c.error, JSON.stringify(c.input));
    }
  }
});

void test('format, TPR, outcome terms and num_search equal the reference on generated responses', () => {
  const gt = parseGroundTruth(golden.groundTruth);
  assert.ok(gt);
  for (const c of golden.rewards) {
    const what = JSON.stringify(c.response);
    const f = formatTerm(c.response).value;
    assert.equal(f, c.format, `format ${what}`);
    const steps = searchStepCount(c.response);
    assert.equal(steps, c.searchSteps, `search steps ${what}`);
    assert.equal(taperingProcessReward(steps, f, 0.7, 10).value, c.tpr, `tpr ${what}`);
    const o = outcomeTerms(c.response, gt, hierarchical);
    assert.deepEqual(
      [o.iou.value, o.box.value, o.point.value, o.frame.value],
      [c.iou, c.box, c.point, c.frame],
      `outcome ${what}`,
    );
    assert.equal(numSearch(c.response), c.numSearch, `num_search ${what}`);
  }
  // The generated set exercises both outcomes of every term.
  for (const k of ['format', 'iou', 'box', 'point'] as const) {
    assert.ok(golden.rewards.some((c) => c[k] === 1) && golden.rewards.some((c) => c[k] === 0), k);
  }
});

void test('the IGR query extraction, the one-line answer and the tool parsers equal the reference', () => {
  let calls = 0;
  let errors = 0;
  for (const c of golden.rewards) {
    const what = JSON.stringify(c.response);
    assert.equal(firstTextSearchQuery(c.response), c.firstQuery, `first query ${what}`);
    assert.deepEqual(allTextSearchQueries(c.response), c.allQueries, `all queries ${what}`);
    assert.equal(firstOneLineAnswer(c.response), c.oneLineAnswer, `one-line answer ${what}`);
    const s = parseSearchAction(c.response);
    const g = c.searchAction;
    if (g === null) assert.equal(s, null, `search ${what}`);
    else if ('crash' in g) assert.equal(s?.kind, 'error', `search ${what}`);
    else if ('observation' in g) {
      errors++;
      assert.deepEqual(s && s.kind === 'error' ? s.observation : s, g.observation, `search ${what}`);
    } else {
      calls++;
      assert.deepEqual(s && s.kind === 'call' ? { tool: s.tool, query: s.query } : s, g, `search ${what}`);
    }
    const k = parseKeyframeAction(c.response);
    const gk = c.keyframeAction;
    if (gk === null) assert.equal(k, null, `keyframe ${what}`);
    else if (!gk.valid) assert.equal(k?.kind, 'invalid', `keyframe ${what}`);
    else assert.deepEqual(k, { kind: 'select', frameId: gk.frame }, `keyframe ${what}`);
  }
  assert.ok(calls > 20 && errors > 10, `calls ${calls}, errors ${errors}`);
});

void test('Seg-Zero soft and strict rewards equal seg.py / seg_restrict.py on generated responses', () => {
  for (const c of golden.segZero) {
    const what = JSON.stringify(c.response);
    for (const format of ['soft', 'strict'] as const) {
      const r = segZeroReward(c.response, golden.segZeroGroundTruth, { ...SEGZERO_DEFAULTS, format });
      assert.deepEqual(
        [r.thinkingFormat, r.segmentationFormat, r.iou, r.boxL1, r.pointL1],
        c[format],
        `${format} ${what}: ${r.reasons.join(' | ')}`,
      );
      assert.equal(
        r.total,
        c[format].reduce((a, b) => a + b, 0),
      );
    }
  }
});
