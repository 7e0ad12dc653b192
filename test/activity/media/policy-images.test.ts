// The images a policy turn sends, against the real dev S3: a data URL is read once per image and
// then comes from memory, concurrent asks share one read, a failed read is not remembered, and the
// cache stays within its size.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PolicyImages } from '../../../activities/media/policy-images.js';
import type { ArtifactStore } from '../../../activities/storage/artifact-store.js';
import { testStore } from '../../support/stack.js';

const store = testStore();
after(() => store.client.destroy());

/** The store, counting the objects it reads. */
function counting(s: ArtifactStore): { store: ArtifactStore; reads: string[] } {
  const reads: string[] = [];
  const spy = Object.create(s) as ArtifactStore;
  spy.getBytes = async (uri: string) => {
    reads.push(uri);
    return s.getBytes(uri);
  };
  return { store: spy, reads };
}

const image = async (bytes = 3000) =>
  store.putContentAddressed('test-policy-images', randomBytes(bytes), 'image/png', 'png');

test('each image is read from S3 once; later turns get the same data URL from memory', async () => {
  const [a, b] = [await image(), await image()];
  const { store: s, reads } = counting(store);
  const images = new PolicyImages(s);
  const first = await images.urls([a, b]);
  assert.equal(first[0], `data:image/png;base64,${(await store.getBytes(a.uri)).toString('base64')}`);
  assert.deepEqual(await images.urls([a, b, a]), [first[0], first[1], first[0]]);
  assert.deepEqual(reads, [a.uri, b.uri]);
  assert.equal(images.cached.entries, 2);
});

test('concurrent turns asking for one image share one read', async () => {
  const a = await image();
  const { store: s, reads } = counting(store);
  const images = new PolicyImages(s);
  const urls = await Promise.all(Array.from({ length: 8 }, () => images.url(a)));
  assert.equal(new Set(urls).size, 1);
  assert.deepEqual(reads, [a.uri]);
});

test('a missing image fails every ask with the store error and is not remembered as missing', async () => {
  const a = await image();
  const gone = { ...a, uri: a.uri.replace(/\.png$/, '-missing.png') };
  const images = new PolicyImages(store);
  await assert.rejects(images.url(gone), /NoSuchKey|not found|does not exist/i);
  await assert.rejects(images.url(gone), /NoSuchKey|not found|does not exist/i);
  assert.equal(images.cached.entries, 0);
});

test('the cache keeps within its size: the least recently used image goes first', async () => {
  const [a, b, c] = [await image(3000), await image(3000), await image(3000)];
  const one = `data:image/png;base64,${(await store.getBytes(a.uri)).toString('base64')}`.length;
  const { store: s, reads } = counting(store);
  const images = new PolicyImages(s, { cacheChars: 2 * one + 10 });
  await images.url(a);
  await images.url(b);
  await images.url(a); // a is now the most recent
  await images.url(c); // b goes
  assert.ok(images.cached.chars <= 2 * one + 10);
  await images.url(a);
  await images.url(b);
  assert.deepEqual(reads, [a.uri, b.uri, c.uri, b.uri]);
});

test('cacheChars 0 reads every time; presigned URLs are never cached and need no read', async () => {
  const a = await image();
  const { store: s, reads } = counting(store);
  const none = new PolicyImages(s, { cacheChars: 0 });
  await none.url(a);
  await none.url(a);
  assert.equal(reads.length, 2);
  const presigned = new PolicyImages(s, { mode: 'presigned-url' });
  const url = await presigned.url(a);
  assert.match(url, /X-Amz-Signature=/);
  assert.equal(reads.length, 2);
  assert.equal((await fetch(url)).status, 200);
});
