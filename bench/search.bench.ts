// Benchmark: the embedded search backend (MiniSearch BM25+) against a naive baseline measured in
// the same run: BM25 computed by scanning every passage's term counts for each query (no inverted
// index). Index build time, memory held by the index, p50/p99 query latency and top-2 recall, on
// the real local KB (../shared/data/local_kb) and on a generated 100,000-passage corpus whose words
// are drawn (Zipf-weighted, fixed seed) from the real corpus' vocabulary. With the ONNX encoder
// present (scripts/setup-models.sh) it also times hybrid search on the real KB.
//   node --expose-gc dist/bench/search.bench.js [passages=100000]
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OnnxTextEncoder } from '../activities/embeddings/encoder.js';
import { LocalCorpus, STOP_WORDS, type Passage } from '../activities/search/local-corpus.js';
import { repoRoot, sharedData } from '../test/support/paths.js';
import { mulberry32 } from '../core/random.js';

const gc = (globalThis as { gc?: () => void }).gc;

function heapMB(): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed / 1024 / 1024;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const tokenize = (s: string) => s.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
/** The baseline indexes the same terms as the backend (stop words dropped). */
const terms = (s: string) => tokenize(s).filter((w) => !STOP_WORDS.has(w));

/** The baseline: BM25 (k1 1.2, b 0.7, title ×2 as the index) by a full scan per query. */
class LinearScan {
  private docs: { title: Map<string, number>; body: Map<string, number>; tlen: number; blen: number }[] = [];
  private df = { title: new Map<string, number>(), body: new Map<string, number>() };
  private avg = { title: 0, body: 0 };

  constructor(passages: readonly Passage[]) {
    for (const p of passages) {
      const count = (words: string[], df: Map<string, number>) => {
        const m = new Map<string, number>();
        for (const w of words) m.set(w, (m.get(w) ?? 0) + 1);
        for (const w of m.keys()) df.set(w, (df.get(w) ?? 0) + 1);
        return m;
      };
      const tw = terms(p.title);
      const bw = terms(p.body);
      this.docs.push({
        title: count(tw, this.df.title),
        body: count(bw, this.df.body),
        tlen: tw.length,
        blen: bw.length,
      });
      this.avg.title += tw.length;
      this.avg.body += bw.length;
    }
    this.avg.title /= Math.max(1, passages.length);
    this.avg.body /= Math.max(1, passages.length);
  }

  search(query: string, topk: number): number[] {
    const qterms = [...new Set(terms(query))];
    const n = this.docs.length;
    const idf = (df: number) => Math.log(1 + (n - df + 0.5) / (df + 0.5));
    const bm25 = (tf: number, len: number, avg: number) =>
      (tf * 2.2) / (tf + 1.2 * (1 - 0.7 + (0.7 * len) / avg));
    const scores: { i: number; s: number }[] = [];
    this.docs.forEach((d, i) => {
      let s = 0;
      for (const t of qterms) {
        const tt = d.title.get(t);
        if (tt) s += 2 * idf(this.df.title.get(t)!) * bm25(tt, d.tlen, this.avg.title);
        const tb = d.body.get(t);
        if (tb) s += idf(this.df.body.get(t)!) * bm25(tb, d.blen, this.avg.body);
      }
      if (s > 0) scores.push({ i, s });
    });
    scores.sort((a, b) => b.s - a.s);
    return scores.slice(0, topk).map((x) => x.i);
  }
}

interface Row {
  name: string;
  buildMs: number;
  heapMB: number;
  p50: number;
  p99: number;
  recall2: number;
}

async function timeQueries(
  queries: string[],
  run: (q: string) => Promise<number[]> | number[],
  expected: number[],
): Promise<Omit<Row, 'name' | 'buildMs' | 'heapMB'>> {
  for (const q of queries.slice(0, 20)) await run(q); // warm-up
  const times: number[] = [];
  let found = 0;
  for (const [i, q] of queries.entries()) {
    const t0 = process.hrtime.bigint();
    const top = await run(q);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (top.includes(expected[i]!)) found++;
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p99: percentile(times, 99), recall2: found / queries.length };
}

async function benchCorpus(
  label: string,
  file: string,
  queries: string[],
  expected: number[],
  encoderDir?: string,
): Promise<Row[]> {
  const rows: Row[] = [];
  // MiniSearch via the real backend (file parse included in the build time).
  let h0 = heapMB();
  let t0 = performance.now();
  const corpus = await LocalCorpus.load({ textCorpus: file });
  const buildMs = performance.now() - t0;
  const corpusHeap = heapMB() - h0;
  const index = new Map(corpus.passages.map((p, i) => [p, i]));
  const ms = await timeQueries(
    queries,
    async (q) => (await corpus.searchText(q, 2)).map((h) => Number(h.id)),
    expected,
  );
  rows.push({ name: `${label} minisearch`, buildMs, heapMB: corpusHeap, ...ms });

  // Baseline over the same parsed passages (parse time added so both builds start from the file).
  h0 = heapMB();
  t0 = performance.now();
  const scan = new LinearScan(corpus.passages);
  const scanBuild = performance.now() - t0;
  const scanHeap = heapMB() - h0;
  const passages = corpus.passages;
  const bs = await timeQueries(
    queries,
    (q) => scan.search(q, 2).map((i) => Number(passages[i]!.id)),
    expected,
  );
  rows.push({ name: `${label} linear-scan baseline`, buildMs: scanBuild, heapMB: scanHeap, ...bs });
  void index;

  if (encoderDir) {
    const encoder = await OnnxTextEncoder.load(encoderDir, { threads: 2 });
    h0 = heapMB();
    t0 = performance.now();
    const hybrid = await LocalCorpus.load({ textCorpus: file, hybrid: true, encoder });
    const hb = performance.now() - t0;
    const hh = heapMB() - h0;
    const hs = await timeQueries(
      queries,
      async (q) => (await hybrid.searchText(q, 2)).map((h) => Number(h.id)),
      expected,
    );
    rows.push({ name: `${label} hybrid (BM25 + MiniLM)`, buildMs: hb, heapMB: hh, ...hs });
    await encoder.release();
  }
  return rows;
}

function print(rows: Row[]): void {
  console.log('corpus / method                          build ms   heap MB   p50 ms   p99 ms   top-2 recall');
  for (const r of rows) {
    console.log(
      `${r.name.padEnd(40)} ${r.buildMs.toFixed(0).padStart(8)} ${r.heapMB.toFixed(1).padStart(9)} ${r.p50.toFixed(3).padStart(8)} ${r.p99.toFixed(3).padStart(8)} ${(r.recall2 * 100).toFixed(1).padStart(13)}%`,
    );
  }
  const base = rows.find((r) => r.name.includes('baseline'));
  const mini = rows.find((r) => r.name.includes('minisearch'));
  if (base && mini) {
    console.log(
      `  ratio baseline/minisearch: p50 ${(base.p50 / mini.p50).toFixed(1)}×, p99 ${(base.p99 / mini.p99).toFixed(1)}× (higher = minisearch faster); build ${(mini.buildMs / base.buildMs).toFixed(2)}×, heap ${(mini.heapMB / Math.max(0.1, base.heapMB)).toFixed(2)}× of the baseline's`,
    );
  }
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 100_000);
  if (!gc) console.log('(run with --expose-gc for accurate heap numbers)');
  const dir = mkdtempSync(join(tmpdir(), 'segflow-bench-search-'));
  try {
    // 1. The real local KB: each passage's title (a real query-like string) must find it.
    const realFile = sharedData('local_kb', 'text_corpus.jsonl');
    const real = await LocalCorpus.load({ textCorpus: realFile });
    const realQueries = real.passages.map((p) => `${p.title} ${tokenize(p.body).slice(0, 3).join(' ')}`);
    const realExpected = real.passages.map((p) => Number(p.id));
    const encoderDir = join(repoRoot, '.models', 'all-MiniLM-L6-v2');
    console.log(
      `real local KB: ${real.passages.length} passages, ${realQueries.length} queries (title + 3 body words), topk 2`,
    );
    print(
      await benchCorpus(
        'local KB',
        realFile,
        realQueries,
        realExpected,
        existsSync(join(encoderDir, 'model.onnx')) ? encoderDir : undefined,
      ),
    );

    // 2. A generated corpus of n passages over the real vocabulary (Zipf weights, fixed seed).
    // Vocabulary ranked by its real frequency, so Zipf weights give real words their real rank.
    const freq = new Map<string, number>();
    for (const p of real.passages) for (const w of tokenize(p.contents)) freq.set(w, (freq.get(w) ?? 0) + 1);
    const vocab = [...freq.keys()].sort((a, b) => freq.get(b)! - freq.get(a)!);
    const rand = mulberry32(42);
    const zipf = vocab.map((_, i) => 1 / (i + 1));
    const cum: number[] = [];
    zipf.reduce((acc, w, i) => ((cum[i] = acc + w), acc + w), 0);
    const total = cum[cum.length - 1]!;
    const word = () => {
      const r = rand() * total;
      let lo = 0;
      let hi = cum.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cum[mid]! < r) lo = mid + 1;
        else hi = mid;
      }
      return vocab[lo]!;
    };
    const lines: string[] = [];
    const genQueries: string[] = [];
    const genExpected: number[] = [];
    for (let i = 0; i < n; i++) {
      const title = Array.from({ length: 4 + Math.floor(rand() * 6) }, word).join(' ');
      const body = Array.from({ length: 30 + Math.floor(rand() * 40) }, word).join(' ');
      lines.push(JSON.stringify({ id: i, contents: `${title}\n${body}` }));
      if (i % Math.max(1, Math.floor(n / 200)) === 0) {
        genQueries.push(`${title} ${body.split(' ').slice(0, 2).join(' ')}`);
        genExpected.push(i);
      }
    }
    const genFile = join(dir, 'generated.jsonl');
    writeFileSync(genFile, lines.join('\n') + '\n');
    lines.length = 0;
    console.log(
      `\ngenerated corpus: ${n} passages (${vocab.length}-word vocabulary), ${genQueries.length} queries, topk 2`,
    );
    print(await benchCorpus(`generated ${n / 1000}k`, genFile, genQueries, genExpected));
    console.log(`\npeak RSS ${(process.memoryUsage().rss / 1024 / 1024).toFixed(0)} MB`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
