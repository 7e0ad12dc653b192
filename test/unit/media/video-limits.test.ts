// The length caps of videos (config media.*) and of an evaluation's fan-out: a breach fails with the
// limit, the keys that set it and what to do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkVideoLength, DEFAULT_VIDEO_LIMITS } from '../../../activities/media/ingest.js';
import { BadMediaError } from '../../../activities/media/errors.js';
import { loadConfig } from '../../../activities/runtime/config-loader.js';
import { EvaluationLimits, evaluationFanOutSchema } from '../../../core/contracts/evaluation.js';

test('a 10-minute 30 fps video is within the default limits; twice as long is too', () => {
  checkVideoLength('race.mp4', { frames: 18_000, durationSec: 600, fps: 30 });
  checkVideoLength('race.mp4', { frames: 36_000, durationSec: 1200, fps: 30 });
  assert.throws(
    () => checkVideoLength('race.mp4', { frames: 45_000, durationSec: 1500, fps: 30 }),
    (err: unknown) => {
      assert.ok(err instanceof BadMediaError);
      assert.match(err.message, /race\.mp4: is 25\.0 minutes long \(45000 frames\)/);
      assert.match(
        err.message,
        /at most 1200 s and 36000 frames \(media\.maxVideoSeconds, media\.maxVideoFrames/,
      );
      assert.match(err.message, /ffmpeg -i in\.mp4 -t 1200 -c copy out\.mp4/);
      return true;
    },
  );
});

test('frames count even without a duration (a frame folder), and high frame rates hit the frame cap', () => {
  assert.throws(() => checkVideoLength('frames/', { frames: 36_001 }), /frames\/: is 36001 frames long/);
  assert.throws(
    () => checkVideoLength('fast.mp4', { frames: 72_000, durationSec: 600, fps: 120 }),
    /is 10\.0 minutes long \(72000 frames\)/,
  );
  // the duration comes from the frame rate when the container has none
  assert.throws(
    () =>
      checkVideoLength(
        'raw.h264',
        { frames: 30_000, durationSec: null, fps: 20 },
        { ...DEFAULT_VIDEO_LIMITS },
      ),
    /is 25\.0 minutes long/,
  );
});

test('the limits come from the config (file, env) and are checked as positive integers', () => {
  const empty = join(mkdtempSync(join(tmpdir(), 'segflow-limits-')), 'empty.yaml');
  writeFileSync(empty, '');
  const { config } = loadConfig({
    file: empty,
    env: { SEGFLOW_MEDIA_MAX_VIDEO_SECONDS: '1800', SEGFLOW_MEDIA_MAX_VIDEO_FRAMES: '54000' },
  });
  assert.deepEqual(
    { s: config.media.maxVideoSeconds, f: config.media.maxVideoFrames, ms: config.media.ffmpegMsPerFrame },
    { s: 1800, f: 54_000, ms: 50 },
  );
  assert.throws(
    () => loadConfig({ file: empty, env: { SEGFLOW_MEDIA_MAX_VIDEO_FRAMES: '0' } }),
    /config key "media\.maxVideoFrames" = "0"/,
  );
});

test("an evaluation's concurrency and page size have caps with their reason", () => {
  assert.ok(evaluationFanOutSchema.safeParse({ concurrency: 4, pageSize: 200 }).success);
  assert.ok(
    evaluationFanOutSchema.safeParse({
      concurrency: EvaluationLimits.concurrency,
      pageSize: EvaluationLimits.pageSize,
    }).success,
  );
  const r = evaluationFanOutSchema.safeParse({ concurrency: 0, pageSize: 5000 });
  assert.equal(r.success, false);
  const messages = r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n');
  assert.match(
    messages,
    /pageSize: at most 1000: a page's children and its plan live in one workflow run's history/,
  );
  assert.match(messages, /concurrency: /);
});
