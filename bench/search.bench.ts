// Benchmark: the embedded text search (activities/search/bm25-index.ts: a stored inverted index
// with top-k pruning) against the engines it replaced, measured in the same run:
// - the old engine, MiniSearch BM25+ (test/support/minisearch-bm25.ts), and a linear scan computing
//   the same BM25 from every passage's term counts, on a generated 100k-passage corpus;
// - the new engine at 100k and at 1M passages (the 1M index built and then served by two child
//   processes, so build time, start time and serving memory are each its own).
// Corpora: words drawn Zipf-weighted (fixed seed) from the real KB's vocabulary; queries of 4 words
// (OR) drawn from sampled passages. Ranking: the top 2 of each of the real KB's questions (the
// policy's text_search queries in the shared step records) compared with MiniSearch's.
// Latency is wall-clock per query on one thread, topk 2, passages read back included; the CPU time
// per query is printed beside it, as a shared machine's load inflates wall-clock tails.
//   node --expose-gc dist/bench/search.bench.js [passages=100000] [large=1000000]
// Ends with one line: BENCH {"name":"search","p99Ms100k",…,"p99Ms1M","buildS1M","rssMb1M","top2Agreement"}
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tokenize as splitTokens } from '../activities/search/bm25-terms.js';
import { LocalCorpus, STOP_WORDS, type Passage } from '../activities/search/local-corpus.js';
import { TextCorpus } from '../activities/search/text-corpus.js';
import { kbQuestions } from '../test/support/kb-questions.js';
import { miniSearchIndex } from '../test/support/minisearch-bm25.js';
import { sharedData } from '../test/support/paths.js';
import { writeZipfCorpus } from '../test/support/zipf-corpus.js';

const gc = (globalThis as { gc?: () => void }).gc;
const rssMb = () => process.memoryUsage().rss / 2 ** 20;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** The baseline's terms: the engine's tokens, lower-cased, stop words dropped. */
const terms = (s: string) =>
  splitTokens(s)
    .map((w) => w.toLowerCase())
    .filter((w) => w !== '' && !STOP_WORDS.has(w));

/** The naive baseline: BM25 (k1 1.2, b 0.7, title ×2) by a full scan per query, no inverted index. */
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

interface Timing {
  p50: number;
  p99: number;
  cpuP99: number;
  /** Share of queries whose source passage is in the top 2. */
  found: number;
}

/** Times each query once, after `warmUp` of them (a worker's engine is warm: the new one gets all). */
async function timeQueries(
  queries: { query: string; from: number }[],
  run: (q: string) => Promise<number[]> | number[],
  warmUp = queries.length,
): Promise<Timing> {
  for (const q of queries.slice(0, warmUp)) await run(q.query);
  gc?.();
  const wall: number[] = [];
  const cpu: number[] = [];
  let found = 0;
  for (const q of queries) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const top = await run(q.query);
    wall.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
    if (top.includes(q.from)) found++;
  }
  wall.sort((a, b) => a - b);
  cpu.sort((a, b) => a - b);
  return {
    p50: percentile(wall, 50),
    p99: percentile(wall, 99),
    cpuP99: percentile(cpu, 99),
    found: found / queries.length,
  };
}

function row(name: string, build: number, t: Timing): void {
  console.log(
    `${name.padEnd(34)} ${build.toFixed(1).padStart(8)} ${t.p50.toFixed(2).padStart(8)} ${t.p99.toFixed(2).padStart(8)} ${t.cpuP99.toFixed(2).padStart(9)} ${(t.found * 100).toFixed(0).padStart(7)}%`,
  );
}
const header = () =>
  console.log(
    `${'engine'.padEnd(34)} ${'build s'.padStart(8)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'cpu p99'.padStart(9)} ${'found'.padStart(8)}`,
  );

const round = (x: number, d = 2) => Number(x.toFixed(d));

/** Child process: builds (`build`) or loads and serves (`serve`) the large corpus' stored index. */
async function child(mode: string, file: string, indexDir: string, queriesJson: string): Promise<void> {
  const t0 = performance.now();
  if (mode === 'build') {
    const c = TextCorpus.open(file, { indexDir });
    const out = { built: c.built, buildS: (performance.now() - t0) / 1000, peakRssMb: rssMb() };
    console.log(`CHILD ${JSON.stringify(out)}`);
    return;
  }
  const corpus = await LocalCorpus.load({ textCorpus: file, indexDir });
  const startS = (performance.now() - t0) / 1000;
  const queries = JSON.parse(queriesJson) as { query: string; from: number }[];
  const t = await timeQueries(queries, async (q) => (await corpus.searchText(q, 2)).map((h) => Number(h.id)));
  gc?.();
  console.log(`CHILD ${JSON.stringify({ startS, rssMb: rssMb(), ...t })}`);
}

function runChild(mode: string, file: string, indexDir: string, queries: unknown): Record<string, number> {
  const self = fileURLToPath(import.meta.url);
  const res = spawnSync(
    process.execPath,
    ['--expose-gc', self, '--child', mode, file, indexDir, JSON.stringify(queries)],
    {
      encoding: 'utf8',
      maxBuffer: 1 << 24,
    },
  );
  const line = res.stdout.split('\n').find((l) => l.startsWith('CHILD '));
  if (res.status !== 0 || !line) throw new Error(`search bench child (${mode}) failed: ${res.stderr}`);
  return JSON.parse(line.slice(6)) as Record<string, number>;
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 100_000);
  const large = Number(process.argv[3] ?? 1_000_000);
  if (!gc) console.log('(run with --expose-gc for steadier numbers)');
  console.log(
    `load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')} on this machine at the start`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'segflow-bench-search-'));
  try {
    // 1. Ranking: the real KB's questions, top 2 against MiniSearch BM25+.
    const kb = TextCorpus.open(sharedData('local_kb', 'text_corpus.jsonl'));
    const reference = miniSearchIndex(kb.all());
    const questions = kbQuestions();
    const same = questions.filter(
      (q) => JSON.stringify(kb.search(q, 2)) === JSON.stringify(reference.search(q).slice(0, 2)),
    ).length;
    const top2Agreement = same / questions.length;
    console.log(
      `real KB: ${kb.size} passages, ${questions.length} questions; same top 2 (ids and scores) as MiniSearch: ${same}/${questions.length}`,
    );

    // 2. n generated passages: the new engine and both old ones, the same queries.
    const genFile = join(dir, `generated-${n}.jsonl`);
    const gen = writeZipfCorpus(genFile, n, { queryCount: 200 });
    console.log(`\ngenerated corpus: ${n} passages, ${gen.queries.length} 4-word queries, topk 2`);
    header();
    let t0 = performance.now();
    const indexDir = join(dir, 'index');
    const engine = await LocalCorpus.load({ textCorpus: genFile, indexDir });
    const engineBuild = (performance.now() - t0) / 1000;
    const mine = await timeQueries(gen.queries, async (q) =>
      (await engine.searchText(q, 2)).map((h) => Number(h.id)),
    );
    row(`bm25 index (new) ${n / 1000}k`, engineBuild, mine);

    t0 = performance.now();
    const passages = engine.passages;
    const mini = miniSearchIndex(passages);
    const miniBuild = (performance.now() - t0) / 1000;
    const old = await timeQueries(
      gen.queries,
      (q) =>
        mini
          .search(q)
          .slice(0, 2)
          .map((r) => r.idx),
      20,
    );
    row(`minisearch (old) ${n / 1000}k`, miniBuild, old);
    const agree100k =
      gen.queries.filter(
        (q) =>
          JSON.stringify(engine.text.search(q.query, 2)) === JSON.stringify(mini.search(q.query).slice(0, 2)),
      ).length / gen.queries.length;

    t0 = performance.now();
    const scan = new LinearScan(passages);
    const scanBuild = (performance.now() - t0) / 1000;
    const lin = await timeQueries(gen.queries, (q) => scan.search(q, 2), 20);
    row(`linear scan ${n / 1000}k`, scanBuild, lin);
    console.log(
      `  ratio old/new: p50 ${(old.p50 / mine.p50).toFixed(0)}×, p99 ${(old.p99 / mine.p99).toFixed(0)}× (minisearch), p99 ${(lin.p99 / mine.p99).toFixed(0)}× (linear scan); same top 2 as minisearch on ${(agree100k * 100).toFixed(1)}% of the queries`,
    );

    // 3. The large corpus: built by one process, loaded and served by another.
    const largeFile = join(dir, `generated-${large}.jsonl`);
    t0 = performance.now();
    const big = writeZipfCorpus(largeFile, large, { queryCount: 500 });
    console.log(
      `\ngenerated corpus: ${large} passages (${(statSync(largeFile).size / 2 ** 20).toFixed(0)} MB, written in ${((performance.now() - t0) / 1000).toFixed(0)} s), ${big.queries.length} queries`,
    );
    const largeIndex = join(dir, 'index-large');
    const built = runChild('build', largeFile, largeIndex, []);
    const indexMb = statSync(join(largeIndex, readdirSync(largeIndex)[0]!)).size / 2 ** 20;
    const served = runChild('serve', largeFile, largeIndex, big.queries);
    console.log(
      `bm25 index ${large / 1e6}M: built in ${built.buildS!.toFixed(1)} s (peak RSS ${built.peakRssMb!.toFixed(0)} MB), stored ${indexMb.toFixed(0)} MB; a new process loads it in ${served.startS!.toFixed(2)} s and serves with RSS ${served.rssMb!.toFixed(0)} MB`,
    );
    header();
    row(`bm25 index (new) ${large / 1e6}M`, built.buildS!, served as unknown as Timing);

    const result = {
      name: 'search',
      p99Ms100k: round(mine.p99),
      p99Ms1M: round(served.p99!),
      buildS1M: round(built.buildS!, 1),
      rssMb1M: Math.round(served.rssMb!),
      top2Agreement: round(top2Agreement, 3),
      p50Ms100k: round(mine.p50),
      p50Ms1M: round(served.p50!),
      cpuP99Ms100k: round(mine.cpuP99),
      cpuP99Ms1M: round(served.cpuP99!),
      startS1M: round(served.startS!),
      indexMb1M: Math.round(indexMb),
      baselineP99Ms100k: { minisearch: round(old.p99), linearScan: round(lin.p99) },
      p99RatioOldOverNew100k: round(old.p99 / mine.p99, 1),
      top2Agreement100k: round(agree100k, 3),
      loadAverage: round(loadavg()[0]!, 1),
    };
    console.log(`BENCH ${JSON.stringify(result)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child')
  await child(process.argv[3]!, process.argv[4]!, process.argv[5]!, process.argv[6]!);
else await main();
