// Bad media: each case fails with a typed, non-retryable BadMediaError naming the file and the
// problem, the CLI exits non-zero with that message, and nothing is stored in S3.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import sharp from 'sharp';
import { contentAddressedKey } from '../../../core/artifacts.js';
import { createMediaActivities } from '../../../activities/media/activities.js';
import { BadMediaError } from '../../../activities/media/errors.js';
import { ingestMedia, MediaNamespaces } from '../../../activities/media/ingest.js';
import { extractFrames } from '../../../activities/media/frames.js';
import { runTool } from '../../../activities/media/ffmpeg.js';
import { sha256OfFile } from '../../../activities/storage/artifact-store.js';
import { activityEnvironment } from '../../support/activity-env.js';
import { repoRoot, sharedData } from '../../support/paths.js';
import { testStore } from '../../support/stack.js';

const store = testStore();
const dir = mkdtempSync(join(tmpdir(), 'segflow-bad-media-'));
const at = (name: string) => join(dir, name);
after(() => store.client.destroy());

before(async () => {
  const cars = readFileSync(sharedData('images', 'cars.jpg'));
  writeFileSync(at('truncated.jpg'), cars.subarray(0, Math.floor(cars.length * 0.4)));
  const corrupt = Buffer.from(cars);
  for (let i = 2000; i < corrupt.length - 2; i += 7) corrupt[i] = (corrupt[i]! * 31 + 17) & 0xff;
  writeFileSync(at('corrupt.jpg'), corrupt);
  writeFileSync(at('not-an-image.jpg'), '<!DOCTYPE html><html>this is a web page</html>\n');
  await sharp({ create: { width: 1, height: 1, channels: 3, background: '#808080' } })
    .png()
    .toFile(at('one-pixel.png'));
  await sharp({
    create: { width: 16384, height: 16384, channels: 3, background: '#102030' },
    limitInputPixels: false,
  })
    .jpeg({ quality: 40 })
    .toFile(at('huge-16k.jpg'));
  // A video whose moov header (faststart) promises 200 frames, cut in half.
  await runTool('ffmpeg', [
    '-hide_banner',
    '-nostdin',
    '-loglevel',
    'error',
    '-y',
    '-i',
    sharedData('videos', 'bedroom.mp4'),
    '-c',
    'copy',
    '-movflags',
    '+faststart',
    at('faststart.mp4'),
  ]);
  const whole = readFileSync(at('faststart.mp4'));
  writeFileSync(at('truncated.mp4'), whole.subarray(0, Math.floor(whole.length / 2)));
  const noise = Buffer.alloc(200_000);
  for (let i = 0; i < noise.length; i++) noise[i] = (i * 2654435761) >>> 24;
  writeFileSync(at('corrupt.mp4'), noise);
  await runTool('ffmpeg', [
    '-hide_banner',
    '-nostdin',
    '-loglevel',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    'testsrc=size=64x48:rate=10',
    '-frames:v',
    '0',
    at('zero-frames.mp4'),
  ]);
  mkdirSync(at('empty-frames'));
  writeFileSync(at('empty-frames/notes.txt'), 'no frames here');
});

const cases: { file: string; problem: RegExp }[] = [
  { file: 'truncated.jpg', problem: /corrupt or truncated/ },
  { file: 'corrupt.jpg', problem: /corrupt or truncated|cannot be decoded/ },
  {
    file: 'not-an-image.jpg',
    problem: /is not a JPEG, PNG or WebP image: it starts with the text "<!DOCTYPE h/,
  },
  { file: 'one-pixel.png', problem: /is 1×1 pixels, smaller than the minimum of 16 pixels on each side/ },
  { file: 'huge-16k.jpg', problem: /is 16384×16384 pixels \(268\.4 MP\), above the limit of 100\.0 MP/ },
  { file: 'truncated.mp4', problem: /is truncated: its header declares 200 frames but only \d+ are present/ },
  {
    file: 'corrupt.mp4',
    problem: /ffmpeg cannot read it as a video: Invalid data found when processing input/,
  },
  { file: 'zero-frames.mp4', problem: /contains no video frames/ },
  { file: 'empty-frames', problem: /contains zero frames \(no \.jpg, \.jpeg, \.png or \.webp files\)/ },
];

for (const c of cases) {
  test(`bad input ${c.file}: typed non-retryable error naming the file and the problem; nothing stored`, async () => {
    const path = at(c.file);
    const err = await ingestMedia(store, path).then(
      () => assert.fail(`${c.file} was accepted`),
      (e: unknown) => e,
    );
    assert.ok(err instanceof BadMediaError, `${c.file}: got ${String(err)}`);
    assert.equal(err.retryable, false);
    assert.equal(err.type, 'BadMediaError');
    assert.equal(err.file, path);
    assert.match(err.problem, c.problem);
    assert.ok(err.message.startsWith(`${path}: `));
    if (!c.file.startsWith('empty')) {
      const { sha256 } = await sha256OfFile(path);
      for (const ns of [MediaNamespaces.images, MediaNamespaces.videos]) {
        for (const ext of ['jpg', 'png', 'mp4']) {
          assert.equal(
            await store.head(contentAddressedKey(ns, sha256, ext)),
            undefined,
            `${c.file} was stored`,
          );
        }
      }
    }
  });
}

test('the CLI exits non-zero and prints the file and the problem for each bad input', () => {
  for (const c of cases.filter((c) => !c.file.startsWith('empty'))) {
    const res = spawnSync(process.execPath, [join(repoRoot, 'bin/segr.js'), 'media', 'probe', at(c.file)], {
      encoding: 'utf8',
    });
    assert.notEqual(res.status, 0, `${c.file}: exit status ${res.status}`);
    assert.equal(res.stdout, '');
    assert.match(res.stderr, new RegExp(`${at(c.file).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
    assert.match(res.stderr, c.problem);
  }
  const frames = spawnSync(
    process.execPath,
    [
      join(repoRoot, 'bin/segr.js'),
      'media',
      'frames',
      at('corrupt.mp4'),
      '--count',
      '6',
      '--size',
      '448',
      '--out',
      at('out'),
    ],
    { encoding: 'utf8' },
  );
  assert.notEqual(frames.status, 0);
  assert.match(frames.stderr, /corrupt\.mp4: ffmpeg cannot read it as a video/);
});

test('asking for frames a video does not have names the video and the valid range', async () => {
  const err = await (async () => {
    for await (const _ of extractFrames(sharedData('videos', 'bedroom.mp4'), [5, 200, 250])) void _;
  })().catch((e: unknown) => e);
  assert.ok(err instanceof BadMediaError);
  assert.match(
    err.message,
    /bedroom\.mp4: has 200 frames \(0\.\.199\); frame indices \[200,250\] do not exist/,
  );
});

test('as an activity, bad media becomes a non-retryable ApplicationFailure of type BadMediaError', async () => {
  const { mediaIngest } = createMediaActivities({ store });
  const err = await activityEnvironment()
    .run(mediaIngest, { source: at('not-an-image.jpg') })
    .catch((e: unknown) => e);
  assert.ok(err instanceof ApplicationFailure);
  assert.equal(err.type, 'BadMediaError');
  assert.equal(err.nonRetryable, true);
  assert.match(err.message, /not-an-image\.jpg: is not a JPEG, PNG or WebP image/);
});
