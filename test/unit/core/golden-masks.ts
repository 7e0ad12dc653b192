// Renders the mask specs of test/golden/masks_spec.py, and loads golden files.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BinaryMask } from '../../../core/metrics/mask.js';
import { repoRoot } from '../../support/paths.js';

export interface MaskSpec {
  width: number;
  height: number;
  full?: boolean;
  rects?: [number, number, number, number][];
  pixels?: [number, number][];
  bits?: string;
}

export function renderMask(spec: MaskSpec): BinaryMask {
  const { width: w, height: h } = spec;
  const data = new Uint8Array(w * h);
  if (spec.full) data.fill(1);
  for (const [x1, y1, x2, y2] of spec.rects ?? []) {
    for (let y = y1; y <= y2; y++) for (let x = x1; x <= x2; x++) data[y * w + x] = 1;
  }
  for (const [x, y] of spec.pixels ?? []) data[y * w + x] = 1;
  if (spec.bits !== undefined) for (let i = 0; i < w * h; i++) data[i] = spec.bits[i] === '1' ? 1 : 0;
  return { width: w, height: h, data };
}

/** A golden JSON file from test/fixtures/golden/; with `nanStrings`, "NaN" strings stand for NaN. */
export function loadGolden<T>(name: string, opts: { nanStrings?: boolean } = {}): T {
  const text = readFileSync(join(repoRoot, 'test', 'fixtures', 'golden', name), 'utf8');
  return (
    opts.nanStrings ? JSON.parse(text, (_k, v: unknown) => (v === 'NaN' ? NaN : v)) : JSON.parse(text)
  ) as T;
}
