/**
 * A plain JSONL manifest, one sample per line: `{id, media, query, mask?, ability?}`. `media` is an
 * image, a video or a folder of frames; `mask` a mask PNG (image) or a folder of per-frame PNGs
 * named by frame number (video, frames). Relative paths are relative to the manifest's folder.
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { BadMediaError } from '../media/errors.js';
import { imageNameRe } from '../media/probe.js';
import type { DatasetSample, SampleMedia } from './types.js';

const lineSchema = z.strictObject({
  id: z.union([z.string().min(1), z.number()]).transform(String),
  media: z.string().min(1),
  query: z.string().min(1),
  mask: z.string().min(1).optional(),
  ability: z.string().min(1).optional(),
});

export async function readManifest(path: string, opts: { split?: string } = {}): Promise<DatasetSample[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new BadMediaError(path, 'does not exist or cannot be read', err);
  }
  const base = dirname(path);
  const samples: DatasetSample[] = [];
  const seen = new Set<string>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line) continue;
    const where = `line ${i + 1}`;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (err) {
      throw new BadMediaError(path, `${where} is not JSON: ${(err as Error).message}`, err);
    }
    const r = lineSchema.safeParse(json);
    if (!r.success) {
      throw new BadMediaError(
        path,
        `${where}: ${r.error.issues.map((e) => `${e.path.join('.') || '(root)'}: ${e.message}`).join('; ')} (expected {id, media, query, mask?, ability?})`,
      );
    }
    const { id, query, ability } = r.data;
    if (seen.has(id)) throw new BadMediaError(path, `${where}: id ${JSON.stringify(id)} appears twice`);
    seen.add(id);
    const mediaPath = resolve(base, r.data.media);
    let st;
    try {
      st = await stat(mediaPath);
    } catch (err) {
      throw new BadMediaError(mediaPath, `does not exist (media of ${where} of ${path})`, err);
    }
    const media: SampleMedia = st.isDirectory()
      ? { kind: 'frames', dir: mediaPath }
      : imageNameRe.test(mediaPath)
        ? { kind: 'image', path: mediaPath }
        : { kind: 'video', path: mediaPath };
    const maskPath = r.data.mask ? resolve(base, r.data.mask) : undefined;
    samples.push({
      format: 'manifest',
      id,
      split: opts.split ?? 'test',
      ability: ability ?? null,
      question: query,
      media,
      annotation: !maskPath
        ? { kind: 'none' }
        : media.kind === 'image'
          ? { kind: 'mask-file', path: maskPath, rule: 'nonzero' }
          : { kind: 'mask-folder', dir: maskPath, rule: 'nonzero' },
      origin: `${path} ${where}`,
    });
  }
  if (samples.length === 0) throw new BadMediaError(path, 'has no samples');
  return samples;
}
