/**
 * A single-channel mask in row-major order. Any non-zero value is foreground (the reference
 * binarises with `astype(bool)`), so 0/1 and 0/255 masks both work as they are.
 */
export interface BinaryMask {
  width: number;
  height: number;
  /** `width * height` values, row-major. */
  data: Uint8Array;
}

/** An all-background mask (what a missing prediction counts as). */
export function emptyMask(width: number, height: number): BinaryMask {
  return { width, height, data: new Uint8Array(width * height) };
}

/** A mask from a predicate over pixel coordinates (tests and fixtures). */
export function maskFrom(width: number, height: number, fg: (x: number, y: number) => boolean): BinaryMask {
  const data = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data[y * width + x] = fg(x, y) ? 1 : 0;
  return { width, height, data };
}

/** Number of foreground pixels. */
export function maskArea(m: BinaryMask): number {
  let n = 0;
  const d = m.data;
  for (let i = 0; i < d.length; i++) if (d[i] !== 0) n++;
  return n;
}

/** Problems with a mask's shape, for messages a person can act on; empty when it is well-formed. */
export function maskProblems(m: BinaryMask, name = 'mask'): string[] {
  const out: string[] = [];
  if (!Number.isInteger(m.width) || m.width <= 0)
    out.push(`${name} width ${m.width} is not a positive integer`);
  if (!Number.isInteger(m.height) || m.height <= 0)
    out.push(`${name} height ${m.height} is not a positive integer`);
  if (m.data.length !== m.width * m.height) {
    out.push(`${name} has ${m.data.length} values, expected width×height = ${m.width}×${m.height}`);
  }
  return out;
}
