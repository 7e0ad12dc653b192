// The stderr progress printer: throttled off a TTY, one rewritten line on a TTY, final line always.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { progressPrinter } from '../../../cli/progress.js';

void test('off a TTY: at most one line per interval, and always the final line', () => {
  const lines: string[] = [];
  let t = 0;
  const update = progressPrinter({
    label: 'preparing',
    write: (s) => void lines.push(s),
    isTTY: false,
    now: () => t,
  });
  for (let done = 1; done <= 10; done++) {
    t += 100; // 10 samples/s, a line at most every 500 ms
    update(done, 10);
  }
  assert.equal(lines.length, 3, lines.join(''));
  assert.match(lines[0]!, /^preparing: 1\/10 \(10%\) · 10\.00\/s · ETA 1s\n$/);
  assert.match(lines[1]!, /^preparing: 6\/10 \(60%\)/);
  assert.equal(lines.at(-1), 'preparing: 10/10 (100%) · 10.00/s · done in 1s\n');
});

void test('on a TTY: the line is rewritten in place and ends with a newline when done', () => {
  const out: string[] = [];
  let t = 0;
  const update = progressPrinter({
    label: 'p',
    write: (s) => void out.push(s),
    isTTY: true,
    now: () => t,
    minIntervalMs: 0,
  });
  t = 1000;
  update(1, 2);
  t = 2000;
  update(2, 2);
  assert.equal(out.length, 2);
  assert.ok(out.every((s) => s.startsWith('\r\x1b[2K')));
  assert.ok(!out[0]!.includes('\n'));
  assert.ok(out[1]!.endsWith('done in 2s\n'));
});
