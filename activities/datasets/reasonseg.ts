/**
 * ReasonSeg in LISA's layout: `<dir>/<name>.jpg` beside `<name>.json` holding
 * `{text: [queries], is_sentence, shapes: [{label, points: [[x, y], …]}]}`. Each query of an image is
 * one sample (`<name>` when there is one query, `<name>#<k>` otherwise); the mask is rasterised
 * from the polygons (see polygon.ts).
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { BadMediaError } from '../media/errors.js';
import type { DatasetSample } from './types.js';

const lisaJson = z.object({
  text: z.union([z.string(), z.array(z.string())]),
  is_sentence: z.boolean().optional(),
  shapes: z.array(
    z.object({
      label: z.string(),
      points: z.array(z.tuple([z.number(), z.number()])),
    }),
  ),
});

/** Reads every (image, query) sample of a ReasonSeg split folder. */
export async function readReasonSeg(dir: string, opts: { split?: string } = {}): Promise<DatasetSample[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (err) {
    throw new BadMediaError(dir, 'is not a readable ReasonSeg folder', err);
  }
  const images = names.filter((n) => /\.(jpe?g|png|webp)$/i.test(n));
  if (images.length === 0) throw new BadMediaError(dir, 'contains no images (.jpg, .png, .webp)');
  const split = opts.split ?? (dir.replace(/\/+$/, '').split('/').pop() || 'val');
  const samples: DatasetSample[] = [];
  for (const image of images) {
    const stem = image.replace(/\.[^.]+$/, '');
    const jsonPath = join(dir, `${stem}.json`);
    if (!names.includes(`${stem}.json`)) {
      throw new BadMediaError(jsonPath, `missing annotation: image ${image} has no ${stem}.json beside it`);
    }
    let parsed;
    try {
      // LISA falls back to cp1252 for a few files; latin1 decodes those bytes the same way.
      const raw = await readFile(jsonPath);
      let text = raw.toString('utf8');
      if (text.includes('\ufffd')) text = raw.toString('latin1');
      parsed = lisaJson.safeParse(JSON.parse(text));
    } catch (err) {
      throw new BadMediaError(jsonPath, `is not valid JSON: ${(err as Error).message}`, err);
    }
    if (!parsed.success) {
      throw new BadMediaError(
        jsonPath,
        `is not a LISA annotation: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
      );
    }
    const texts = typeof parsed.data.text === 'string' ? [parsed.data.text] : parsed.data.text;
    if (texts.length === 0) throw new BadMediaError(jsonPath, 'has no query in "text"');
    const shapes = parsed.data.shapes.map((s) => ({
      label: s.label,
      points: s.points as [number, number][],
    }));
    if (!shapes.some((s) => s.label.toLowerCase() !== 'flag' && !s.label.toLowerCase().includes('ignore'))) {
      throw new BadMediaError(jsonPath, 'missing annotation: it has no target polygon in "shapes"');
    }
    texts.forEach((text, k) => {
      samples.push({
        format: 'reasonseg',
        id: texts.length === 1 ? stem : `${stem}#${k}`,
        split,
        ability: null,
        question: text,
        media: { kind: 'image', path: join(dir, image) },
        annotation: { kind: 'polygons', file: jsonPath, shapes },
        origin: jsonPath,
      });
    });
  }
  return samples;
}
