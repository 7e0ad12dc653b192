// The real DAVIS masks (OSVOS predictions, 854×480 palette PNGs) round-trip through our PNG
// (0/255) and COCO RLE encodings unchanged, and our RLE equals pycocotools' on the golden subset.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  encodeMaskPng,
  readBinaryMask,
  readColourObjects,
  maskArea,
} from '../../../activities/media/masks.js';
import { decodeRle, encodeRle, masksEqual } from '../../../activities/media/rle.js';
import { repoRoot, sharedData } from '../../support/paths.js';

interface DavisGolden {
  file: string;
  color: number[];
  height: number;
  width: number;
  counts: string;
  area: number;
}
const golden = (
  JSON.parse(readFileSync(join(repoRoot, 'test/fixtures/golden/media/coco-rle.json'), 'utf8')) as {
    davis: DavisGolden[];
  }
).davis;

test('every davis_osvos mask round-trips through PNG (0/255) and COCO RLE unchanged', async () => {
  let objects = 0;
  let files = 0;
  for (const video of ['blackswan', 'dog', 'judo']) {
    const dir = sharedData('davis_osvos', video);
    for (const name of readdirSync(dir)
      .filter((n) => n.endsWith('.png'))
      .sort()) {
      const path = join(dir, name);
      const perObject = await readColourObjects(path);
      files++;
      for (const [colour, mask] of perObject) {
        assert.deepEqual([mask.width, mask.height], [854, 480]);
        const png = await encodeMaskPng(mask);
        const back = await readBinaryMask(png, 'eq255');
        assert.ok(
          masksEqual(back, mask),
          `${video}/${name} object ${colour}: PNG round trip changed the mask`,
        );
        const rle = encodeRle(mask);
        assert.ok(
          masksEqual(decodeRle(rle), mask),
          `${video}/${name} object ${colour}: RLE round trip changed the mask`,
        );
        objects++;
      }
    }
  }
  assert.equal(files, 144);
  assert.ok(objects >= 144, `objects: ${objects}`);
});

test('RLE of real DAVIS masks equals pycocotools mask.encode', async () => {
  assert.ok(golden.length >= 6);
  for (const g of golden) {
    const objects = await readColourObjects(sharedData('davis_osvos', g.file));
    const mask = objects.get(g.color.join(','));
    assert.ok(mask, `${g.file}: no object with colour ${g.color}`);
    assert.equal(maskArea(mask), g.area, g.file);
    assert.deepEqual(encodeRle(mask), { size: [g.height, g.width], counts: g.counts }, g.file);
  }
});
