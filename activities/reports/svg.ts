/**
 * Inline SVG charts for self-contained reports: grouped bars and line charts with axes, ticks and
 * a legend. Written here (a few dozen lines each) rather than inlining a charting library: the
 * report must open offline with no script, and static SVG prints, diffs and screenshots exactly.
 * Non-finite values are drawn as gaps (lines) or omitted bars, and labelled "n/a".
 */
import { escapeHtml } from './html.js';

export const PALETTE = [
  '#3366cc',
  '#dc3912',
  '#ff9900',
  '#109618',
  '#990099',
  '#0099c6',
  '#dd4477',
  '#66aa00',
];

export interface BarGroup {
  label: string;
  /** One value per series, in series order. */
  values: number[];
}

export interface BarChartOptions {
  title: string;
  series: string[];
  groups: BarGroup[];
  /** Upper end of the y axis. @default the largest value (at least 1e-9) */
  yMax?: number;
  /** Tick and value labels. @default two decimals */
  format?: (v: number) => string;
  width?: number;
  height?: number;
}

const fmt2 = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : 'n/a');

/** Round tick values for [0, max]. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step)
    out.push(Number(v.toPrecision(12)));
  return out;
}

function legend(series: readonly string[], x: number, y: number): string {
  return series
    .map(
      (s, i) =>
        `<g class="legend-item"><rect x="${x + i * 130}" y="${y}" width="12" height="12" fill="${PALETTE[i % PALETTE.length]}"/>` +
        `<text x="${x + i * 130 + 16}" y="${y + 10}" font-size="12">${escapeHtml(s)}</text></g>`,
    )
    .join('');
}

/** Grouped vertical bars (e.g. J, F, J&F per ability). */
export function barChart(o: BarChartOptions): string {
  const W = o.width ?? 600;
  const H = o.height ?? 300;
  const format = o.format ?? fmt2;
  const m = { l: 50, r: 10, t: 30, b: 60 };
  const finite = o.groups.flatMap((g) => g.values).filter(Number.isFinite);
  const yMax = o.yMax ?? Math.max(1e-9, ...finite);
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const y = (v: number) => m.t + ph - (Math.max(0, Math.min(v, yMax)) / yMax) * ph;
  const parts: string[] = [];
  parts.push(
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">${escapeHtml(o.title)}</text>`,
  );
  for (const t of niceTicks(0, yMax)) {
    parts.push(
      `<line x1="${m.l}" x2="${W - m.r}" y1="${y(t)}" y2="${y(t)}" stroke="#ddd"/>` +
        `<text x="${m.l - 6}" y="${y(t) + 4}" text-anchor="end" font-size="11">${escapeHtml(format(t))}</text>`,
    );
  }
  const gw = pw / Math.max(1, o.groups.length);
  const bw = Math.min(40, (gw * 0.8) / Math.max(1, o.series.length));
  o.groups.forEach((g, gi) => {
    const x0 = m.l + gi * gw + (gw - bw * o.series.length) / 2;
    g.values.forEach((v, si) => {
      const x = x0 + si * bw;
      if (!Number.isFinite(v)) {
        parts.push(
          `<text x="${x + bw / 2}" y="${m.t + ph - 4}" text-anchor="middle" font-size="10">n/a</text>`,
        );
        return;
      }
      parts.push(
        `<rect class="bar" x="${x.toFixed(1)}" y="${y(v).toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${(m.t + ph - y(v)).toFixed(1)}" fill="${PALETTE[si % PALETTE.length]}"><title>${escapeHtml(`${g.label} ${o.series[si] ?? ''}: ${format(v)}`)}</title></rect>`,
      );
      parts.push(
        `<text x="${(x + bw / 2 - 1).toFixed(1)}" y="${(y(v) - 3).toFixed(1)}" text-anchor="middle" font-size="9">${escapeHtml(format(v))}</text>`,
      );
    });
    parts.push(
      `<text x="${(m.l + gi * gw + gw / 2).toFixed(1)}" y="${m.t + ph + 16}" text-anchor="middle" font-size="12">${escapeHtml(g.label)}</text>`,
    );
  });
  parts.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${m.t + ph}" stroke="#333"/>`);
  parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${m.t + ph}" y2="${m.t + ph}" stroke="#333"/>`);
  parts.push(legend(o.series, m.l, H - 22));
  return `<svg class="chart bar-chart" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeHtml(o.title)}">${parts.join('')}</svg>`;
}

export interface LineSeries {
  name: string;
  points: [number, number][];
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  /** y range. @default from the data (always including 0 when all values are ≥ 0) */
  yMin?: number;
  yMax?: number;
  format?: (v: number) => string;
  width?: number;
  height?: number;
}

/** Lines with point markers over a numeric x axis (steps, policy versions). */
export function lineChart(o: LineChartOptions): string {
  const W = o.width ?? 600;
  const H = o.height ?? 280;
  const format = o.format ?? fmt2;
  const m = { l: 56, r: 14, t: 30, b: 64 };
  const pts = o.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  let xMin = xs.length ? Math.min(...xs) : 0;
  let xMax = xs.length ? Math.max(...xs) : 1;
  if (xMax === xMin) {
    xMin -= 1;
    xMax += 1;
  }
  let yMin = o.yMin ?? (ys.length ? Math.min(0, ...ys) : 0);
  let yMax = o.yMax ?? (ys.length ? Math.max(...ys) : 1);
  if (yMax === yMin) {
    yMax += 1;
    if (o.yMin === undefined) yMin -= yMin === 0 ? 0 : 1;
  }
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const X = (v: number) => m.l + ((v - xMin) / (xMax - xMin)) * pw;
  const Y = (v: number) => m.t + ph - ((v - yMin) / (yMax - yMin)) * ph;
  const parts: string[] = [];
  parts.push(
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">${escapeHtml(o.title)}</text>`,
  );
  for (const t of niceTicks(yMin, yMax)) {
    parts.push(
      `<line x1="${m.l}" x2="${W - m.r}" y1="${Y(t).toFixed(1)}" y2="${Y(t).toFixed(1)}" stroke="#ddd"/>` +
        `<text x="${m.l - 6}" y="${(Y(t) + 4).toFixed(1)}" text-anchor="end" font-size="11">${escapeHtml(format(t))}</text>`,
    );
  }
  for (const t of niceTicks(xMin, xMax, 8)) {
    parts.push(
      `<line x1="${X(t).toFixed(1)}" x2="${X(t).toFixed(1)}" y1="${m.t + ph}" y2="${m.t + ph + 4}" stroke="#333"/>` +
        `<text x="${X(t).toFixed(1)}" y="${m.t + ph + 16}" text-anchor="middle" font-size="11">${escapeHtml(String(t))}</text>`,
    );
  }
  o.series.forEach((s, si) => {
    const color = PALETTE[si % PALETTE.length]!;
    const sorted = [...s.points].sort((a, b) => a[0] - b[0]);
    // A non-finite value breaks the line: one path segment per finite run.
    let d = '';
    let pen = false;
    for (const [x, y] of sorted) {
      if (!Number.isFinite(x) || !Number.isFinite(y)) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${X(x).toFixed(1)},${Y(y).toFixed(1)}`;
      pen = true;
    }
    if (d) parts.push(`<path class="line" d="${d}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const [x, y] of sorted) {
      if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
      parts.push(
        `<circle class="point" cx="${X(x).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="3" fill="${color}"><title>${escapeHtml(`${s.name} @ ${x}: ${format(y)}`)}</title></circle>`,
      );
    }
  });
  parts.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${m.t + ph}" stroke="#333"/>`);
  parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${m.t + ph}" y2="${m.t + ph}" stroke="#333"/>`);
  parts.push(
    `<text x="${m.l + pw / 2}" y="${m.t + ph + 32}" text-anchor="middle" font-size="12">${escapeHtml(o.xLabel)}</text>`,
  );
  parts.push(
    `<text transform="translate(14 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle" font-size="12">${escapeHtml(o.yLabel)}</text>`,
  );
  parts.push(
    legend(
      o.series.map((s) => s.name),
      m.l,
      H - 18,
    ),
  );
  if (pts.length === 0)
    parts.push(`<text x="${W / 2}" y="${m.t + ph / 2}" text-anchor="middle" font-size="12">no data</text>`);
  return `<svg class="chart line-chart" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeHtml(o.title)}">${parts.join('')}</svg>`;
}
