/**
 * Reading a mask PNG as a binary mask (1 = foreground), the way the evaluation binarises masks:
 * any non-zero label is foreground.
 *
 * Palette PNGs (DAVIS, YouTube-VOS annotations) store a label INDEX per pixel, but sharp (libvips)
 * expands them to palette colours. We therefore read the PNG's PLTE chunk ourselves and call a
 * pixel foreground when its colour differs from the colour of index 0 — which is exactly
 * "index ≠ 0" as long as no other palette entry shares index 0's colour. When one does, the index
 * cannot be recovered from colours, and we refuse the file rather than guess. (The DAVIS palette:
 * index 0 is black (0, 0, 0), every other index a distinct colour.)
 *
 * Grayscale and RGB PNGs: a pixel is foreground when any colour channel is non-zero; alpha is
 * ignored. For OK-VOS masks (0/255) and the masks segflow writes (0/255) this is the reference rule.
 */
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { BadInputError } from '../errors.js';

/** A mask file that cannot be used: names the file and the problem; never retryable. */
function badMask(file: string, problem: string, cause?: unknown): BadInputError {
  return new BadInputError(`${file}: ${problem}`, { file, problem }, cause);
}

/** A decoded binary mask: `data[y * width + x]` is 1 for foreground, 0 for background. */
export interface MaskPng {
  width: number;
  height: number;
  data: Uint8Array;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** The palette of a palette PNG (colour type 3) as RGB triples, or null for other PNGs. */
export function pngPalette(buf: Uint8Array): [number, number, number][] | null {
  if (buf.length < 8 || PNG_SIGNATURE.some((b, i) => buf[i] !== b)) return null;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 8;
  let colourType = -1;
  while (pos + 8 <= buf.length) {
    const len = view.getUint32(pos);
    const type = String.fromCharCode(
      buf[pos + 4] ?? 0,
      buf[pos + 5] ?? 0,
      buf[pos + 6] ?? 0,
      buf[pos + 7] ?? 0,
    );
    const start = pos + 8;
    if (start + len > buf.length) return null;
    if (type === 'IHDR' && len >= 10) colourType = buf[start + 9] ?? -1;
    if (type === 'PLTE') {
      if (colourType !== 3) return null;
      const out: [number, number, number][] = [];
      for (let i = 0; i + 2 < len; i += 3)
        out.push([buf[start + i] ?? 0, buf[start + i + 1] ?? 0, buf[start + i + 2] ?? 0]);
      return out;
    }
    if (type === 'IDAT' || type === 'IEND') return null;
    pos = start + len + 4;
  }
  return null;
}

/** Decode a mask PNG from memory; `label` names it in errors. */
export async function decodeMaskPng(buf: Uint8Array, label: string): Promise<MaskPng> {
  const palette = pngPalette(buf);
  let raw;
  try {
    raw = await sharp(buf, { failOn: 'error' }).raw().toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw badMask(
      label,
      `is not a readable image (${err instanceof Error ? err.message : String(err)})`,
      err,
    );
  }
  const { width, height, channels } = raw.info;
  const px = raw.data;
  const out = new Uint8Array(width * height);
  // Colour channels: 1 (grey), 2 (grey + alpha), 3 (RGB), 4 (RGBA).
  const colour = channels === 2 ? 1 : channels === 4 ? 3 : channels;
  if (palette !== null && palette.length > 0 && colour === 3) {
    const bg = palette[0] ?? [0, 0, 0];
    const clash = palette.findIndex((c, i) => i > 0 && c[0] === bg[0] && c[1] === bg[1] && c[2] === bg[2]);
    if (clash > 0) {
      throw badMask(
        label,
        `palette index ${clash} has the same colour as index 0 (${bg.join(',')}), so foreground cannot be told ` +
          'from background after decoding; re-save the mask as 8-bit grayscale (0 = background)',
      );
    }
    for (let i = 0, p = 0; i < out.length; i++, p += channels) {
      out[i] = px[p] !== bg[0] || px[p + 1] !== bg[1] || px[p + 2] !== bg[2] ? 1 : 0;
    }
  } else {
    for (let i = 0, p = 0; i < out.length; i++, p += channels) {
      let fg = 0;
      for (let c = 0; c < colour; c++) if (px[p + c] !== 0) fg = 1;
      out[i] = fg;
    }
  }
  return { width, height, data: out };
}

/** Read a mask PNG file (non-zero label = foreground). Throws BadInputError naming the file. */
export async function readMaskPng(path: string): Promise<MaskPng> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    throw badMask(path, `cannot be read (${err instanceof Error ? err.message : String(err)})`, err);
  }
  return decodeMaskPng(buf, path);
}
