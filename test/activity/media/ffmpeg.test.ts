import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runTool, startTool } from '../../../activities/media/ffmpeg.js';
import { ToolProcessError } from '../../../activities/media/errors.js';

test('runTool returns stdout of a successful run', async () => {
  const out = await runTool('ffprobe', ['-version']);
  assert.match(out.toString(), /ffprobe version/);
});

test('a failing run rejects with exit status and stderr, not retryable', async () => {
  const err = await runTool('ffmpeg', [
    '-hide_banner',
    '-nostdin',
    '-loglevel',
    'error',
    '-i',
    '/nonexistent/x.mp4',
    '-f',
    'null',
    '-',
  ]).catch((e: unknown) => e);
  assert.ok(err instanceof ToolProcessError);
  assert.equal(err.kind, 'exit');
  assert.notEqual(err.exitCode, 0);
  assert.equal(err.retryable, false);
  assert.match(err.stderr, /No such file or directory/);
  assert.match(err.message, /\/nonexistent\/x\.mp4: No such file or directory/);
});

test('a run past its time limit is killed and reported as a retryable timeout', async () => {
  const started = Date.now();
  const err = await runTool(
    'ffmpeg',
    ['-hide_banner', '-nostdin', '-re', '-f', 'lavfi', '-i', 'testsrc=rate=5', '-f', 'null', '-'],
    {
      timeoutMs: 400,
    },
  ).catch((e: unknown) => e);
  assert.ok(err instanceof ToolProcessError);
  assert.equal(err.kind, 'timeout');
  assert.equal(err.retryable, true);
  assert.ok(Date.now() - started < 5000);
});

test('an AbortSignal stops the process and the run is reported as cancelled', async () => {
  const ac = new AbortController();
  const proc = startTool(
    'ffmpeg',
    ['-hide_banner', '-nostdin', '-re', '-f', 'lavfi', '-i', 'testsrc=rate=5', '-f', 'null', '-'],
    {
      signal: ac.signal,
    },
  );
  setTimeout(() => ac.abort(), 200);
  const err = await proc.done.catch((e: unknown) => e);
  assert.ok(err instanceof ToolProcessError);
  assert.equal(err.kind, 'aborted');
  assert.equal(err.retryable, false);
});

test('stop() ends a process on purpose without an error', async () => {
  const proc = startTool('ffmpeg', [
    '-hide_banner',
    '-nostdin',
    '-f',
    'lavfi',
    '-i',
    'testsrc',
    '-f',
    'rawvideo',
    'pipe:1',
  ]);
  proc.stdout.once('data', () => proc.stop());
  proc.stdout.resume();
  await proc.done;
});

test('a missing ffmpeg binary is a non-retryable error that says how to install it', async () => {
  const saved = process.env.PATH;
  process.env.PATH = '/nonexistent-bin';
  try {
    const err = await runTool('ffprobe', ['-version']).catch((e: unknown) => e);
    assert.ok(err instanceof ToolProcessError);
    assert.equal(err.kind, 'missing');
    assert.equal(err.retryable, false);
    assert.match(err.message, /apt-get install ffmpeg/);
  } finally {
    process.env.PATH = saved;
  }
});
