/**
 * HTML building blocks of the reports: escaping (every string from a dataset or a model is
 * untrusted), tables and the self-contained page (inline CSS, no script, no external URL; the
 * Content-Security-Policy forbids any fetch but data: images, so the page renders offline).
 */

export function escapeHtml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** A number for a table cell: fixed decimals, "n/a" for NaN/∞ (e.g. an ability with no query). */
export function cell(v: number | null | undefined, digits = 3): string {
  return v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(digits);
}

/** A table; `rows` are already-escaped HTML cells unless `raw` is false (then they are escaped). */
export function table(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  opts: { id?: string; raw?: boolean; caption?: string } = {},
): string {
  const esc = opts.raw === false ? escapeHtml : (s: string) => s;
  const head = headers.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  // Numbers (and n/a) right-aligned, text left-aligned.
  const num = /^(<b>)?(-?[\d.,]+%?|n\/a|\$[\d.]+)(<\/b>)?$/;
  const td = (c: string) => (num.test(c) ? `<td class="n">${esc(c)}</td>` : `<td>${esc(c)}</td>`);
  const body = rows.map((r) => `<tr>${r.map(td).join('')}</tr>`).join('\n');
  return (
    `<table${opts.id ? ` id="${escapeHtml(opts.id)}"` : ''}>` +
    (opts.caption ? `<caption>${escapeHtml(opts.caption)}</caption>` : '') +
    `<thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`
  );
}

const CSS = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f3f3f3}
td.n{text-align:right;font-variant-numeric:tabular-nums}
caption{text-align:left;font-weight:bold;padding:4px 0}
.charts{display:flex;flex-wrap:wrap;gap:16px}
.chart{background:#fff;border:1px solid #e3e3e3}
.gallery{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;border:1px solid #ddd;padding:6px;background:#fafafa;max-width:340px}
figure img{display:block;max-width:320px;height:auto}
figcaption{font-size:12px;margin-top:4px;word-break:break-word}
.kpi{display:inline-block;margin:0 24px 8px 0}.kpi b{font-size:20px;display:block}
.scroll{max-height:480px;overflow:auto}
`;

/** A complete, self-contained HTML document. */
export function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><style>${CSS}</style></head>
<body>
${body}
</body></html>
`;
}

/** A key figure shown big. */
export function kpi(label: string, value: string): string {
  return `<span class="kpi"><b>${escapeHtml(value)}</b>${escapeHtml(label)}</span>`;
}
