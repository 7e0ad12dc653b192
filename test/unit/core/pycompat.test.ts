// Python string semantics, checked against values printed by CPython 3.11.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pyJsonDumps } from '../../../core/pycompat/pyjson.js';
import { pyFloatRepr, pyRepr, pyStrRepr } from '../../../core/pycompat/pyrepr.js';
import { pyCount, pyInt, pyLen, pyRound, pySlice, pyStrip } from '../../../core/pycompat/text.js';

void test('Unicode decimal digits come in runs of ten starting at value 0 (what pyInt relies on)', () => {
  let runs = 0;
  let start = -1;
  for (let cp = 0; cp <= 0x110000; cp++) {
    const isDigit = cp < 0x110000 && /\p{Nd}/u.test(String.fromCodePoint(cp));
    if (isDigit && start < 0) start = cp;
    if (!isDigit && start >= 0) {
      assert.equal((cp - start) % 10, 0, `run at U+${start.toString(16)}`);
      runs++;
      start = -1;
    }
  }
  assert.ok(runs > 60);
});

void test('int(): signs, whitespace, Unicode digits, underscores; ValueError → null', () => {
  assert.equal(pyInt(' +٣_4 '), 34);
  assert.equal(pyInt('𝟘𝟙'), 1);
  assert.equal(pyInt('-12'), -12);
  for (const bad of ['1__0', '_1', '1_', '+', '', ' ', '1 2', '0x1', '١.'])
    assert.equal(pyInt(bad), null, bad);
});

void test('round() is half to even; strip() uses str.isspace', () => {
  assert.deepEqual(
    [0.5, 1.5, 2.5, -0.5, -1.5, 2.675 * 100, 12.5, 13.5].map(pyRound),
    [0, 2, 2, 0, -2, 268, 12, 14],
  );
  assert.equal(pyStrip(' \x1c\x85x\u3000'), 'x');
  assert.equal(pyStrip('\ufeffx'), '\ufeffx');
  assert.equal(pyLen('a😀b'), 3);
  assert.equal(pySlice('a😀bc', 1, 3), '😀b');
  assert.equal(pyCount('<search><search>x<search', '<search>'), 2);
});

void test('repr() of floats and strings', () => {
  const floats: [number, string][] = [
    [0.1, '0.1'],
    [1e16, '1e+16'],
    [1.5e16, '1.5e+16'],
    [1e-5, '1e-05'],
    [0.0001, '0.0001'],
    [123.456, '123.456'],
    [-2.5e-7, '-2.5e-07'],
    [1e22, '1e+22'],
    [3e-310, '3e-310'],
    [12345678901234567.0, '1.2345678901234568e+16'],
    [0.30000000000000004, '0.30000000000000004'],
  ];
  for (const [x, s] of floats) assert.equal(pyFloatRepr(x), s, String(x));
  assert.equal(pyStrRepr('a'), "'a'");
  assert.equal(pyStrRepr("it's"), `"it's"`);
  assert.equal(pyStrRepr('say "hi"'), `'say "hi"'`);
  assert.equal(pyStrRepr(`both ' "`), `'both \\' "'`);
  assert.equal(pyStrRepr('tab\tnl\n'), "'tab\\tnl\\n'");
  assert.equal(pyStrRepr('\x00\x7f\x85é\u200b😀\ud800'), "'\\x00\\x7f\\x85é\\u200b😀\\ud800'");
  assert.equal(pyRepr([1, 'a', null, true, { k: [0.5] }]), "[1, 'a', None, True, {'k': [0.5]}]");
  assert.equal(pyJsonDumps({ name: 'x', v: [1, 0.5, 'é'] }), '{"name": "x", "v": [1, 0.5, "\\u00e9"]}');
});
