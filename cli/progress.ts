/**
 * Progress of long local work (`segr dataset prepare`, `segr nano publish`) on stderr: done/total,
 * rate and ETA. On a TTY one line is rewritten in place; otherwise at most one line every
 * `minIntervalMs` (default 500 ms, i.e. ≤ 2 lines/s), so CI logs stay short. The final line is always
 * printed. Hand-written (~40 lines) because no progress package (cli-progress, listr2) is installed
 * and this needs no new dependency. It never writes to stdout, which carries the command's result.
 */
export interface ProgressOptions {
  label: string;
  write?: (s: string) => void;
  isTTY?: boolean;
  minIntervalMs?: number;
  now?: () => number;
}

const duration = (s: number) =>
  !Number.isFinite(s)
    ? '?'
    : s < 60
      ? `${Math.round(s)}s`
      : `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;

/** Returns `update(done, total)`; call it after each item (the last call, done === total, ends the line). */
export function progressPrinter(opts: ProgressOptions): (done: number, total: number) => void {
  const write = opts.write ?? ((s: string) => void process.stderr.write(s));
  const tty = opts.isTTY ?? process.stderr.isTTY === true;
  const now = opts.now ?? Date.now;
  const minInterval = opts.minIntervalMs ?? 500;
  const start = now();
  let last = -Infinity;
  return (done, total) => {
    const t = now();
    const final = done >= total;
    if (!final && t - last < minInterval) return;
    last = t;
    const secs = Math.max((t - start) / 1000, 1e-9);
    const rate = done / secs;
    const pct = total > 0 ? Math.floor((done / total) * 100) : 100;
    const line = `${opts.label}: ${done}/${total} (${pct}%) · ${rate.toFixed(2)}/s · ${final ? `done in ${duration(secs)}` : `ETA ${duration(rate > 0 ? (total - done) / rate : Infinity)}`}`;
    write(tty ? `\r\x1b[2K${line}${final ? '\n' : ''}` : `${line}\n`);
  };
}
