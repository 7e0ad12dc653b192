// The linear-time matchers return exactly what the reference's regexes return.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  countThinkingThenSearch,
  firstKeyframeContent,
  firstOneLineAnswer,
  firstThinkingThenAnswer,
  hasThinkingThenKeyframe,
  searchBlocks,
  textSearchQueries,
} from '../../../core/protocol/scan.js';
import { PY_DIGIT_CLASS, PY_REGEX_WS_CLASS, pyStrip } from '../../../core/pycompat/text.js';
import { scoreTrajectory } from '../../../core/rewards/score.js';

// The Python patterns, translated literally (DOTALL `.` → [\s\S], `\s`/`\d` → the regex module's classes).
const WS = PY_REGEX_WS_CLASS;
const D = PY_DIGIT_CLASS;
const RX = {
  frame: new RegExp(`<thinking>[\\s\\S]*?</thinking>${WS}*<keyframe>${WS}*(${D}+)${WS}*</keyframe>`, 'u'),
  answer: new RegExp(`<thinking>[\\s\\S]*?</thinking>${WS}*<answer>${WS}*([\\s\\S]*?)${WS}*</answer>`, 'u'),
  search: new RegExp(`<thinking>[\\s\\S]*?</thinking>${WS}*<search>[\\s\\S]*?</search>`, 'gu'),
  igr: new RegExp(`\\{"name":${WS}*"text_search"[\\s\\S]*?"query":${WS}*"([\\s\\S]*?)"\\}`, 'gu'),
  blocks: /<search>([\s\S]*?)<\/search>/gu,
  keyframe: new RegExp(`<keyframe>${WS}*([\\s\\S]*?)${WS}*</keyframe>`, 'u'),
  oneLine: /<answer>([^\n]*?)<\/answer>/u,
};

const FRAGMENTS = [
  '<thinking>',
  '</thinking>',
  '<think',
  'ing>',
  '</',
  'thinking>',
  '<search>',
  '</search>',
  '<keyframe>',
  '</keyframe>',
  '<answer>',
  '</answer>',
  ' ',
  '\n',
  '\r',
  '\u3000',
  '\u2028',
  '\x1c',
  '\x85',
  '\ufeff',
  '7',
  '٣',
  '𝟘',
  'x',
  '"',
  '"}',
  '}',
  '{"name":',
  '{"name": ',
  '"text_search"',
  '"image_search"',
  '"query":',
  '"query": "',
  'abc',
  '{',
  ':',
];
const soup = fc.array(fc.constantFrom(...FRAGMENTS), { maxLength: 30 }).map((a) => a.join(''));

void test('the scanners equal the literal regexes on random tag soup', () => {
  fc.assert(
    fc.property(soup, (s) => {
      assert.equal(hasThinkingThenKeyframe(s), RX.frame.test(s));
      const a = RX.answer.exec(s);
      assert.equal(firstThinkingThenAnswer(s), a === null ? null : pyStrip(a[1] ?? ''));
      assert.equal(countThinkingThenSearch(s), [...s.matchAll(RX.search)].length);
      assert.deepEqual(
        textSearchQueries(s),
        [...s.matchAll(RX.igr)].map((m) => m[1]),
      );
      assert.deepEqual(
        searchBlocks(s),
        [...s.matchAll(RX.blocks)].map((m) => m[1]),
      );
      const k = RX.keyframe.exec(s);
      assert.equal(firstKeyframeContent(s), k === null ? null : pyStrip(k[1] ?? ''));
      const o = RX.oneLine.exec(s);
      assert.equal(firstOneLineAnswer(s), o === null ? null : o[1]);
    }),
    { numRuns: 3000 },
  );
});

void test('scoring adversarial text finishes (no catastrophic backtracking)', { timeout: 20_000 }, () => {
  // Each of these makes a backtracking engine quadratic or worse in the text length.
  const n = 200_000;
  const cases = [
    '<thinking></thinking><answer>'.repeat(n / 30),
    '<thinking>'.repeat(n / 10) + '</thinking> <search>',
    '{"name": "text_search", "query": "'.repeat(n / 35),
    '<answer>'.repeat(n / 8),
    `<thinking>${' '.repeat(n)}`,
  ];
  for (const response of cases) {
    const r = scoreTrajectory({
      response,
      groundTruth: '{}',
      steps: ['a step'],
      similarity: { firstQuery: [0.9] },
    });
    assert.equal(typeof r.total, 'number');
  }
});
