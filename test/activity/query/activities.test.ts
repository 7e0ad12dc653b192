// The query glue activities against the dev stack's S3: a keyframe located in a stored frame list
// (what a workflow gets instead of the list), and the errors of a frame list that lists nothing.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createQueryActivities } from '../../../activities/query/activities.js';
import { throughWorkerInterceptors } from '../../support/activity-env.js';
import { testStore, uniqueId } from '../../support/stack.js';

const store = testStore();
after(() => store.client.destroy());
const acts = throughWorkerInterceptors(createQueryActivities({ store }));
const prefix = `test/query-activities/${uniqueId('q')}`;

test('queryLocateKeyframe: the position of a frame id in a stored frame list, and the list size', async () => {
  // an OK-VOS folder: frame ids are the file names' integers, every fifth frame
  const frames = Array.from({ length: 3000 }, (_, i) => ({
    fid: i * 5,
    name: `${String(i * 5).padStart(5, '0')}.jpg`,
    ref: {
      uri: `s3://segflow/${prefix}/frames/${i}.jpg`,
      sha256: 'a'.repeat(64),
      bytes: 1,
      contentType: 'image/jpeg',
    },
  }));
  const frameSet = await store.putJson(`${prefix}/set.json`, { width: 1280, height: 720, frames });
  assert.deepEqual(await acts.queryLocateKeyframe({ frameSet, keyframe: 1235 }), {
    index: 247,
    frames: 3000,
    width: 1280,
    height: 720,
  });
  assert.equal((await acts.queryLocateKeyframe({ frameSet, keyframe: 1236 })).index, null);
  // the same answer as the whole list gives (what older histories read into the workflow)
  const list = await acts.queryFrameList({ frameSet });
  assert.equal(list.fids.indexOf(1235), 247);

  const empty = await store.putJson(`${prefix}/empty.json`, { width: 1, height: 1, frames: [] });
  await assert.rejects(
    acts.queryLocateKeyframe({ frameSet: empty, keyframe: 0 }),
    (err: Error & { type?: string }) => {
      assert.equal(err.type, 'BadInputError');
      assert.match(err.message, /frame set .*empty\.json lists no frames/);
      return true;
    },
  );
});
