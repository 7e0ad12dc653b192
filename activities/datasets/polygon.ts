/**
 * Polygon rasterisation for LISA-style annotations (ReasonSeg), following LISA's
 * `get_mask_from_json`: vertices cast to int32 (truncated), each polygon filled and its closed
 * outline drawn 1 px wide (cv2.fillPoly + cv2.polylines), polygons painted from the largest to the
 * smallest so a small "ignore" region inside a target survives. Pure: no Node built-ins.
 * Written by hand because no maintained JS library reproduces OpenCV's filled-polygon rule; for
 * integer vertices the filled set is every pixel centre inside or on the outline.
 */

export type Point = readonly [number, number];

/** Pixels of a closed polygon (filled, outline included) as flat indices into a width×height grid. */
export function polygonPixels(points: readonly Point[], width: number, height: number): number[] {
  const pts = points.map(([x, y]) => [Math.trunc(x), Math.trunc(y)] as const);
  const out = new Set<number>();
  if (pts.length === 0) return [];
  const put = (x: number, y: number) => {
    if (x >= 0 && y >= 0 && x < width && y < height) out.add(y * width + x);
  };
  // Scanline fill at integer rows, even-odd rule, half-open edges so shared vertices count once.
  const ys = pts.map((p) => p[1]);
  const yMin = Math.max(0, Math.min(...ys));
  const yMax = Math.min(height - 1, Math.max(...ys));
  for (let y = yMin; y <= yMax; y++) {
    const xs: number[] = [];
    for (let i = 0; i < pts.length; i++) {
      const [x0, y0] = pts[i]!;
      const [x1, y1] = pts[(i + 1) % pts.length]!;
      if (y0 === y1) continue;
      const lo = Math.min(y0, y1);
      const hi = Math.max(y0, y1);
      if (y < lo || y >= hi) continue;
      xs.push(x0 + ((y - y0) * (x1 - x0)) / (y1 - y0));
    }
    xs.sort((a, b) => a - b);
    for (let k = 0; k + 1 < xs.length; k += 2) {
      const from = Math.max(0, Math.ceil(xs[k]! - 1e-9));
      const to = Math.min(width - 1, Math.floor(xs[k + 1]! + 1e-9));
      for (let x = from; x <= to; x++) put(x, y);
    }
  }
  // The closed outline (Bresenham, 8-connected like cv2.polylines with thickness 1).
  for (let i = 0; i < pts.length; i++) {
    let [x0, y0] = pts[i]!;
    const [x1, y1] = pts[(i + 1) % pts.length]!;
    const dx = Math.abs(x1 - x0);
    const dy = -Math.abs(y1 - y0);
    const sx = x0 < x1 ? 1 : -1;
    const sy = y0 < y1 ? 1 : -1;
    let err = dx + dy;
    for (;;) {
      put(x0, y0);
      if (x0 === x1 && y0 === y1) break;
      const e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        x0 += sx;
      }
      if (e2 <= dx) {
        err += dx;
        y0 += sy;
      }
    }
  }
  return [...out];
}

export interface LabeledPolygon {
  label: string;
  points: readonly Point[];
}

/**
 * LISA's label map: 0 background, 1 target, 255 ignore ("ignore" in the label); "flag" shapes are
 * skipped. Returns the target mask and the ignore mask (both 0/1).
 */
export function rasteriseShapes(
  shapes: readonly LabeledPolygon[],
  width: number,
  height: number,
): { target: Uint8Array; ignore: Uint8Array } {
  const valid = shapes
    .filter((s) => s.label.toLowerCase() !== 'flag')
    .map((s) => ({ s, pixels: polygonPixels(s.points, width, height) }));
  // Largest first (numpy argsort()[::-1]: equal areas keep reverse input order).
  const order = valid
    .map((_, i) => i)
    .sort((a, b) => valid[b]!.pixels.length - valid[a]!.pixels.length || b - a);
  const labels = new Uint8Array(width * height);
  for (const i of order) {
    const { s, pixels } = valid[i]!;
    const v = s.label.toLowerCase().includes('ignore') ? 255 : 1;
    for (const p of pixels) labels[p] = v;
  }
  const target = new Uint8Array(width * height);
  const ignore = new Uint8Array(width * height);
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] === 1) target[i] = 1;
    else if (labels[i] === 255) ignore[i] = 1;
  }
  return { target, ignore };
}
