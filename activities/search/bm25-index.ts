/**
 * The embedded BM25 engine: an inverted index in typed arrays with per-block score maxima, queried
 * in windows of documents with MaxScore pruning (Turtle & Flood 1995) over the block maxima (Ding &
 * Suel 2011; windowed as Lucene's MaxScoreBulkScorer), and stored in one file (text-corpus.ts) so a
 * worker loads it instead of re-indexing the corpus.
 *
 * It ranks exactly as the MiniSearch BM25+ index it replaces (same tokens, BM25+ with k1 1.2, b 0.7,
 * δ 0.5 per field, titles ×2, scores summed in query order and multiplied by the number of query
 * words matched; ties in MiniSearch's result order), so search results do not change with the
 * engine: test/activity/search/bm25-index.test.ts checks it against MiniSearch itself.
 *
 * Hand-written, as no library fits: MiniSearch and the other Node BM25 libraries score every
 * matching document (no pruning; at 100k passages slower than a linear scan), SQLite FTS5 has no
 * pruning either (p99 136 ms at 100k), LanceDB's full-text search was 6.4 ms p99 at 100k on several
 * threads, and tantivy (Rust, block-max WAND) needs a Python sidecar and ranks differently (Lucene
 * BM25 without δ or the match-count factor, lossy length norms, another tokenizer). The numbers are
 * in bench/search.bench.ts and the README's search section.
 *
 * Layout: per term, the documents holding it in either field (ascending), their title and body
 * term frequencies, and per block of BLOCK postings the last document and the best score a
 * document of the block can get from the term. Per document, the two fields' length norms.
 */
import { BM25, TITLE_BOOST, processTerm, queryTerms, tokenize } from './bm25-terms.js';

/** Postings per block of the block-max data. */
export const BLOCK = 128;

/** Bounds are compared with this slack, so a document whose exact score ties the threshold is kept. */
const SLACK = 1 - 1e-9;

export interface Scored {
  /** Position of the document in the corpus (0-based, blank and broken lines skipped). */
  idx: number;
  score: number;
}

type TfArray = Uint8Array | Uint16Array | Uint32Array;

/** The arrays an index consists of (what is stored, section by section). */
export interface Bm25Arrays {
  docCount: number;
  terms: string[];
  idfTitle: Float64Array;
  idfBody: Float64Array;
  /** Best score one occurrence of the term gives any document. */
  maxScore: Float64Array;
  /** Term t's postings are [postStart[t], postStart[t + 1]). */
  postStart: Uint32Array;
  /** Term t's blocks are [blockStart[t], blockStart[t + 1]). */
  blockStart: Uint32Array;
  docs: Uint32Array;
  tfTitle: TfArray;
  tfBody: TfArray;
  blockLast: Uint32Array;
  blockMax: Float64Array;
  /** k1 · (1 − b + b · length / average length), per document and field. */
  normTitle: Float64Array;
  normBody: Float64Array;
}

class Growable {
  data: Uint32Array<ArrayBuffer>;
  length = 0;
  constructor(capacity = 1024) {
    this.data = new Uint32Array(capacity);
  }
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Uint32Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  view(): Uint32Array {
    return this.data.subarray(0, this.length);
  }
}

function growInt32(a: Int32Array, min: number, fill: number): Int32Array {
  if (a.length > min) return a;
  const next = new Int32Array(Math.max(min + 1, a.length * 2)).fill(fill);
  next.set(a);
  return next;
}

function narrowest(values: Uint32Array, max: number): TfArray {
  if (max <= 0xff) return Uint8Array.from(values);
  if (max <= 0xffff) return Uint16Array.from(values);
  return values;
}

/** Adds documents one at a time (title, body), then `finish()` gives the index. */
export class Bm25Builder {
  private readonly termIds = new Map<string, number>();
  private readonly terms: string[] = [];
  /** Raw (case-kept) tokens: MiniSearch counts a field's length as its distinct raw tokens. */
  private readonly rawIds = new Map<string, number>();
  private rawTerm: Int32Array = new Int32Array(1024).fill(-2); // -2 unknown, -1 no term (stop word, empty)
  private rawStamp: Int32Array = new Int32Array(1024).fill(-1);
  private tfT: Int32Array = new Int32Array(1024);
  private tfB: Int32Array = new Int32Array(1024);
  private readonly touched: number[] = [];
  // One entry per (document, term): the term, its title and body frequency; documents in order.
  private readonly entryTerm = new Growable(1 << 16);
  private readonly entryTfT = new Growable(1 << 16);
  private readonly entryTfB = new Growable(1 << 16);
  private readonly docEnd = new Growable(1024);
  private readonly lenT = new Growable(1024);
  private readonly lenB = new Growable(1024);
  private dfT: Int32Array = new Int32Array(1024);
  private dfB: Int32Array = new Int32Array(1024);
  private avgT = 0;
  private avgB = 0;
  private count = 0;

  private field(text: string, stamp: number, tf: 'tfT' | 'tfB'): number {
    let distinct = 0;
    for (const raw of tokenize(text)) {
      let r = this.rawIds.get(raw);
      if (r === undefined) {
        r = this.rawIds.size;
        this.rawIds.set(raw, r);
        this.rawTerm = growInt32(this.rawTerm, r, -2);
        this.rawStamp = growInt32(this.rawStamp, r, -1);
      }
      if (this.rawStamp[r] !== stamp) {
        this.rawStamp[r] = stamp;
        distinct++;
      }
      let t = this.rawTerm[r]!;
      if (t === -2) {
        const term = processTerm(raw);
        if (term === null) t = -1;
        else {
          t = this.termIds.get(term) ?? -1;
          if (t === -1) {
            t = this.terms.length;
            this.termIds.set(term, t);
            this.terms.push(term);
            this.tfT = growInt32(this.tfT, t, 0);
            this.tfB = growInt32(this.tfB, t, 0);
            this.dfT = growInt32(this.dfT, t, 0);
            this.dfB = growInt32(this.dfB, t, 0);
          }
        }
        this.rawTerm[r] = t;
      }
      if (t < 0) continue;
      if (this.tfT[t] === 0 && this.tfB[t] === 0) this.touched.push(t);
      this[tf][t]!++;
    }
    return distinct;
  }

  /** Adds the next document; returns its position. */
  add(title: string, body: string): number {
    const idx = this.count;
    const lt = this.field(title, idx * 2, 'tfT');
    const lb = this.field(body, idx * 2 + 1, 'tfB');
    // MiniSearch keeps a running average, not sum / count: the same arithmetic, the same norms.
    this.avgT = (this.avgT * idx + lt) / (idx + 1);
    this.avgB = (this.avgB * idx + lb) / (idx + 1);
    this.lenT.push(lt);
    this.lenB.push(lb);
    for (const t of this.touched) {
      const a = this.tfT[t]!;
      const b = this.tfB[t]!;
      this.entryTerm.push(t);
      this.entryTfT.push(a);
      this.entryTfB.push(b);
      if (a > 0) this.dfT[t]!++;
      if (b > 0) this.dfB[t]!++;
      this.tfT[t] = 0;
      this.tfB[t] = 0;
    }
    this.touched.length = 0;
    this.docEnd.push(this.entryTerm.length);
    this.count++;
    return idx;
  }

  get size(): number {
    return this.count;
  }

  finish(): Bm25Index {
    const n = this.count;
    const nTerms = this.terms.length;
    const { k, b } = BM25;
    const idf = (m: number) => Math.log(1 + (n - m + 0.5) / (m + 0.5));
    const idfTitle = new Float64Array(nTerms);
    const idfBody = new Float64Array(nTerms);
    for (let t = 0; t < nTerms; t++) {
      idfTitle[t] = idf(this.dfT[t]!);
      idfBody[t] = idf(this.dfB[t]!);
    }
    const normTitle = new Float64Array(n);
    const normBody = new Float64Array(n);
    const lenT = this.lenT.view();
    const lenB = this.lenB.view();
    for (let i = 0; i < n; i++) {
      normTitle[i] = k * (1 - b + (b * lenT[i]!) / this.avgT);
      normBody[i] = k * (1 - b + (b * lenB[i]!) / this.avgB);
    }
    // Counting sort of the (document, term) entries by term; documents stay ascending.
    const entries = this.entryTerm.length;
    if (entries > 0xffffffff) throw new RangeError('bm25 index: more than 2^32 postings');
    const postStart = new Uint32Array(nTerms + 1);
    const entryTerm = this.entryTerm.view();
    for (let e = 0; e < entries; e++) postStart[entryTerm[e]! + 1]!++;
    for (let t = 0; t < nTerms; t++) postStart[t + 1]! += postStart[t]!;
    const fill = postStart.slice(0, nTerms);
    const docs = new Uint32Array(entries);
    const tfT32 = new Uint32Array(entries);
    const tfB32 = new Uint32Array(entries);
    const entryTfT = this.entryTfT.view();
    const entryTfB = this.entryTfB.view();
    const docEnd = this.docEnd.view();
    let maxTf = 0;
    for (let doc = 0, e = 0; doc < n; doc++) {
      for (const end = docEnd[doc]!; e < end; e++) {
        const p = fill[entryTerm[e]!]!++;
        docs[p] = doc;
        tfT32[p] = entryTfT[e]!;
        tfB32[p] = entryTfB[e]!;
        maxTf = Math.max(maxTf, entryTfT[e]!, entryTfB[e]!);
      }
    }
    const tfTitle = narrowest(tfT32, maxTf);
    const tfBody = narrowest(tfB32, maxTf);
    // Block maxima and term maxima.
    const blockStart = new Uint32Array(nTerms + 1);
    for (let t = 0; t < nTerms; t++) {
      blockStart[t + 1] = blockStart[t]! + Math.ceil((postStart[t + 1]! - postStart[t]!) / BLOCK);
    }
    const nBlocks = blockStart[nTerms]!;
    const blockLast = new Uint32Array(nBlocks);
    const blockMax = new Float64Array(nBlocks);
    const maxScore = new Float64Array(nTerms);
    const partial: Bm25Arrays = {
      docCount: n,
      terms: this.terms,
      idfTitle,
      idfBody,
      maxScore,
      postStart,
      blockStart,
      docs,
      tfTitle,
      tfBody,
      blockLast,
      blockMax,
      normTitle,
      normBody,
    };
    for (let t = 0; t < nTerms; t++) {
      let best = 0;
      for (let p = postStart[t]!, blk = blockStart[t]!; p < postStart[t + 1]!; blk++) {
        const end = Math.min(p + BLOCK, postStart[t + 1]!);
        let m = 0;
        for (; p < end; p++) m = Math.max(m, contribution(partial, t, p));
        blockLast[blk] = docs[end - 1]!;
        blockMax[blk] = m;
        best = Math.max(best, m);
      }
      maxScore[t] = best;
    }
    return new Bm25Index(partial);
  }
}

/** What one occurrence of term t gives the document of posting p: MiniSearch's arithmetic, in its order. */
function contribution(a: Bm25Arrays, t: number, p: number): number {
  const { k, d } = BM25;
  const doc = a.docs[p]!;
  const ft = a.tfTitle[p]!;
  const fb = a.tfBody[p]!;
  let s = 0;
  let any = false;
  if (ft > 0) {
    s = TITLE_BOOST * (a.idfTitle[t]! * (d + (ft * (k + 1)) / (ft + a.normTitle[doc]!)));
    any = true;
  }
  if (fb > 0) {
    const body = a.idfBody[t]! * (d + (fb * (k + 1)) / (fb + a.normBody[doc]!));
    s = any ? s + body : body;
  }
  return s;
}

/** One distinct query term and its walk over its postings. */
interface Clause {
  term: number;
  /** Position among the query's distinct terms (first-occurrence order). */
  slot: number;
  /** Times the term occurs in the query (each occurrence adds its score again). */
  weight: number;
  pos: number;
  end: number;
  block: number;
  blockEnd: number;
  /** weight × the best contribution of the term in the current window. */
  bound: number;
  /** Blocks of the term in the current window. */
  cost: number;
  /** The clause's postings in the current window: [winStart, winEnd). */
  winStart: number;
  winEnd: number;
}

/** Documents per window: scores of the essential terms are gathered window by window. */
const WINDOW = 4096;

interface Ranked extends Scored {
  /** MiniSearch's order among equal scores (first query word matched, title before body). */
  key: number;
}

/** The arrays of Bm25Arrays, by name, as stored (array-file.ts). */
const STORED = [
  'idfTitle',
  'idfBody',
  'maxScore',
  'postStart',
  'blockStart',
  'docs',
  'tfTitle',
  'tfBody',
  'blockLast',
  'blockMax',
  'normTitle',
  'normBody',
] as const;

export class Bm25Index {
  private readonly termIds: Map<string, number>;
  private readonly acc = new Float64Array(WINDOW);
  private readonly hits = new Uint8Array(WINDOW);
  private readonly touched = new Int32Array(WINDOW);

  constructor(readonly arrays: Bm25Arrays) {
    this.termIds = new Map(arrays.terms.map((t, i) => [t, i]));
  }

  get docCount(): number {
    return this.arrays.docCount;
  }

  /** The index as named arrays and fields, for writeArrayFile. */
  toStored(): {
    fields: Record<string, unknown>;
    arrays: Record<string, Bm25Arrays[(typeof STORED)[number]]>;
  } {
    const arrays: Record<string, Bm25Arrays[(typeof STORED)[number]]> = {};
    for (const name of STORED) arrays[name] = this.arrays[name];
    arrays.terms = new TextEncoder().encode(this.arrays.terms.join('\n'));
    return { fields: { docCount: this.arrays.docCount, termCount: this.arrays.terms.length }, arrays };
  }

  /** The index back from toStored()'s output; throws on anything missing or inconsistent. */
  static fromStored(fields: Record<string, unknown>, arrays: Record<string, unknown>): Bm25Index {
    const docCount = fields.docCount;
    const termCount = fields.termCount;
    if (typeof docCount !== 'number' || typeof termCount !== 'number')
      throw new Error('no docCount / termCount');
    const terms = arrays.terms instanceof Uint8Array ? new TextDecoder().decode(arrays.terms) : undefined;
    if (terms === undefined) throw new Error('no terms');
    const out = { docCount, terms: termCount === 0 ? [] : terms.split('\n') } as Record<string, unknown>;
    for (const name of STORED) {
      if (!ArrayBuffer.isView(arrays[name])) throw new Error(`no ${name}`);
      out[name] = arrays[name];
    }
    const a = out as unknown as Bm25Arrays;
    const postings = a.docs.length;
    if (
      a.terms.length !== termCount ||
      a.postStart.length !== termCount + 1 ||
      a.postStart[termCount] !== postings ||
      a.blockStart.length !== termCount + 1 ||
      a.blockStart[termCount] !== a.blockLast.length ||
      a.blockMax.length !== a.blockLast.length ||
      a.tfTitle.length !== postings ||
      a.tfBody.length !== postings ||
      a.normTitle.length !== docCount ||
      a.normBody.length !== docCount ||
      a.idfTitle.length !== termCount
    ) {
      throw new Error('array sizes do not match');
    }
    return new Bm25Index(a);
  }

  /** The query's distinct known terms (first-occurrence order) and its sequence of them. */
  private clauses(query: string): { clauses: Clause[]; sequence: number[] } {
    const a = this.arrays;
    const slotOf = new Map<number, number>();
    const sequence: number[] = [];
    const clauses: Clause[] = [];
    for (const w of queryTerms(query)) {
      const t = this.termIds.get(w);
      if (t === undefined) continue;
      let slot = slotOf.get(t);
      if (slot === undefined) {
        slot = clauses.length;
        slotOf.set(t, slot);
        clauses.push({
          term: t,
          slot,
          weight: 0,
          pos: a.postStart[t]!,
          end: a.postStart[t + 1]!,
          block: a.blockStart[t]!,
          blockEnd: a.blockStart[t + 1]!,
          bound: 0,
          cost: 0,
          winStart: 0,
          winEnd: 0,
        });
      }
      clauses[slot]!.weight++;
      sequence.push(slot);
    }
    return { clauses, sequence };
  }

  /**
   * The best `k` documents for `query` (Infinity: every document that holds a query word), best
   * first; equal scores keep MiniSearch's order (first query word matched, title before body, then
   * corpus position).
   */
  search(query: string, k: number): Scored[] {
    if (k <= 0) return [];
    const ranked = Number.isFinite(k) ? this.top(query, k) : this.all(query);
    return ranked.map(({ idx, score }) => ({ idx, score }));
  }

  /** Every matching document, scored term by term in query order (MiniSearch's own sums). */
  private all(query: string): Ranked[] {
    const a = this.arrays;
    const { clauses, sequence } = this.clauses(query);
    const found = new Map<number, Ranked & { count: number }>();
    const counted = new Set<number>();
    for (const slot of sequence) {
      const c = clauses[slot]!;
      const first = !counted.has(slot);
      counted.add(slot);
      for (let p = c.pos; p < c.end; p++) {
        const doc = a.docs[p]!;
        const s = contribution(a, c.term, p);
        const r = found.get(doc);
        if (r === undefined) {
          found.set(doc, { idx: doc, score: s, count: 1, key: slot * 2 + (a.tfTitle[p]! > 0 ? 0 : 1) });
        } else {
          r.score += s;
          if (first) r.count++;
        }
      }
    }
    const out = [...found.values()].map((r) => ({ idx: r.idx, score: r.score * r.count, key: r.key }));
    return out.sort((x, y) => y.score - x.score || x.key - y.key || x.idx - y.idx);
  }

  /**
   * The best k, window by window (WINDOW documents). In a window every term is bounded by the block
   * maxima of its blocks there, and a document's score by (the bounds of the terms it holds,
   * summed) × (their number: BM25's match-count factor). Once k documents are found, that bound
   * against the k-th score rules out whole windows, and picks the terms whose documents are the
   * candidates: either MaxScore's essential terms (those that the others, together, cannot make up
   * for) or, when a contender must hold m of the n terms, the n − m + 1 rarest: whichever set holds
   * fewer postings. Candidates probe the other terms, best bound first, while they can still
   * make it; the survivors are scored exactly.
   */
  private top(query: string, k: number): Ranked[] {
    const a = this.arrays;
    const { clauses, sequence } = this.clauses(query);
    const nc = clauses.length;
    if (nc === 0) return [];
    const { docs, blockLast, blockMax, postStart, blockStart } = a;
    const { acc, hits, touched } = this;
    const contrib = new Float64Array(nc); // by slot
    const matched = new Uint8Array(nc); // by slot
    const inTitle = new Uint8Array(nc); // by slot
    /** restBound[i]: the bounds of probes[i..] summed. */
    const restBound = new Float64Array(nc + 1);
    const live: Clause[] = [];
    const gen: Clause[] = [];
    const probes: Clause[] = [];
    const top: Ranked[] = [];
    let theta = 0;

    for (let windowMin = 0; windowMin < a.docCount; windowMin += WINDOW) {
      const windowMax = Math.min(windowMin + WINDOW, a.docCount) - 1;
      // Each term's bound in the window (the best of its blocks there) and its postings there, about.
      live.length = 0;
      let total = 0;
      let nextStart = NO_DOC; // the first document of any term past this window
      for (const c of clauses) {
        let blk = c.block;
        while (blk < c.blockEnd && blockLast[blk]! < windowMin) blk++;
        c.block = blk;
        let bound = 0;
        let b = blk;
        const base = postStart[c.term]! - blockStart[c.term]! * BLOCK;
        for (; b < c.blockEnd && docs[base + b * BLOCK]! <= windowMax; b++) {
          if (blockMax[b]! > bound) bound = blockMax[b]!;
        }
        if (bound === 0) {
          if (blk < c.blockEnd) nextStart = Math.min(nextStart, docs[base + blk * BLOCK]!);
          continue;
        }
        c.bound = c.weight * bound;
        c.cost = b - blk;
        total += c.bound;
        live.push(c);
      }
      if (live.length === 0) {
        if (nextStart === NO_DOC) break;
        windowMin = Math.floor(nextStart / WINDOW) * WINDOW - WINDOW; // over the empty windows
        continue;
      }
      const full = top.length === k;
      const need = theta * SLACK;
      const n = live.length;
      if (full && total * n < need) continue;

      // The candidates' terms (gen) and the terms they probe (probes, best bound first).
      gen.length = 0;
      probes.length = 0;
      if (!full) gen.push(...live);
      else {
        live.sort((x, y) => x.bound - y.bound);
        // MaxScore: the lowest bounds that together cannot reach the threshold.
        let essential = 0;
        let essentialCost = 0;
        for (let sum = 0; essential < n && (sum + live[essential]!.bound) * (essential + 1) < need;)
          sum += live[essential++]!.bound;
        for (let i = essential; i < n; i++) essentialCost += live[i]!.cost;
        // The fewest terms a contender holds: m with the m best bounds reaching the threshold.
        let m = 0;
        for (let sum = 0; m < n && sum * m < need;) sum += live[n - 1 - m++]!.bound;
        const byCost = [...live].sort((x, y) => x.cost - y.cost);
        let rareCost = 0;
        for (let i = 0; i <= n - m; i++) rareCost += byCost[i]!.cost;
        if (rareCost < essentialCost) {
          for (let i = 0; i < n; i++) (i <= n - m ? gen : probes).push(byCost[i]!);
          probes.sort((x, y) => y.bound - x.bound);
        } else {
          for (let i = n - 1; i >= 0; i--) (i >= essential ? gen : probes).push(live[i]!);
        }
      }
      const np = probes.length;
      restBound[np] = 0;
      for (let i = np - 1; i >= 0; i--) restBound[i] = restBound[i + 1]! + probes[i]!.bound;

      // Window scores of the candidate terms, term at a time.
      let nTouched = 0;
      for (const c of gen) {
        let p = c.pos;
        const first = postStart[c.term]! + (c.block - blockStart[c.term]!) * BLOCK;
        if (p < first) p = first;
        while (p < c.end && docs[p]! < windowMin) p++;
        c.winStart = p;
        const w = c.weight;
        for (; p < c.end; p++) {
          const d = docs[p]! - windowMin;
          if (d >= WINDOW) break;
          if (hits[d] === 0) touched[nTouched++] = d;
          hits[d]!++;
          acc[d]! += w * contribution(a, c.term, p);
        }
        c.winEnd = p;
        c.pos = p;
      }
      // Candidates in document order (the probes move forwards): a few are sorted, many are read
      // off the window's counters.
      let cand: Int32Array;
      if (nTouched <= 64) cand = touched.subarray(0, nTouched).sort();
      else {
        nTouched = 0;
        for (let d = 0; d <= windowMax - windowMin; d++) if (hits[d] !== 0) touched[nTouched++] = d;
        cand = touched.subarray(0, nTouched);
      }

      for (let t = 0; t < nTouched; t++) {
        const d = cand[t]!;
        const doc = windowMin + d;
        let partial = acc[d]!;
        let count = hits[d]!;
        acc[d] = 0;
        hits[d] = 0;
        let pruned = false;
        for (let i = 0; i < np; i++) {
          if (full && (partial + restBound[i]!) * (count + np - i) < need) {
            pruned = true;
            break;
          }
          const c = probes[i]!;
          seek(a, c, doc);
          if (c.pos < c.end && docs[c.pos]! === doc) {
            partial += c.weight * contribution(a, c.term, c.pos);
            count++;
          }
        }
        if (pruned || (top.length === k && partial * count < theta * SLACK)) continue;

        // A contender: its exact score, summed in query order, times the distinct words matched.
        matched.fill(0);
        for (const c of gen) {
          const p = find(docs, c.winStart, c.winEnd, doc);
          if (p >= 0) mark(a, c, p, contrib, matched, inTitle);
        }
        for (const c of probes)
          if (c.pos < c.end && docs[c.pos]! === doc) mark(a, c, c.pos, contrib, matched, inTitle);
        let sum = 0;
        for (const slot of sequence) if (matched[slot]) sum += contrib[slot]!;
        const r: Ranked = { idx: doc, score: sum * count, key: 0 };
        let first = 0;
        while (!matched[first]) first++;
        r.key = first * 2 + (inTitle[first] ? 0 : 1);
        if (top.length === k) {
          if (!before(r, top[k - 1]!)) continue;
          top.pop();
        }
        let at = top.length;
        while (at > 0 && before(r, top[at - 1]!)) at--;
        top.splice(at, 0, r);
        if (top.length === k) theta = top[k - 1]!.score;
      }
    }
    return top;
  }
}

function mark(
  a: Bm25Arrays,
  c: Clause,
  p: number,
  contrib: Float64Array,
  matched: Uint8Array,
  inTitle: Uint8Array,
): void {
  contrib[c.slot] = contribution(a, c.term, p);
  matched[c.slot] = 1;
  inTitle[c.slot] = a.tfTitle[p]! > 0 ? 1 : 0;
}

const NO_DOC = 0x3fffffff;

/** True when x ranks before y: higher score, then MiniSearch's order. */
function before(x: Ranked, y: Ranked): boolean {
  return x.score > y.score || (x.score === y.score && (x.key < y.key || (x.key === y.key && x.idx < y.idx)));
}

/** Moves c to its first posting ≥ target (block by block, then by binary search in the block). */
function seek(a: Bm25Arrays, c: Clause, target: number): void {
  const docs = a.docs;
  if (c.pos >= c.end || docs[c.pos]! >= target) return;
  // Dense terms: the target is usually a few postings on.
  for (let p = c.pos + 1, stop = Math.min(c.pos + 8, c.end); p < stop; p++) {
    if (docs[p]! >= target) {
      c.pos = p;
      return;
    }
  }
  let blk = c.block;
  while (blk < c.blockEnd && a.blockLast[blk]! < target) blk++;
  c.block = blk;
  if (blk >= c.blockEnd) {
    c.pos = c.end;
    return;
  }
  const base = a.postStart[c.term]! + (blk - a.blockStart[c.term]!) * BLOCK;
  let lo = Math.max(c.pos, base);
  let hi = Math.min(c.end, base + BLOCK) - 1; // the block's last document is ≥ target
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (docs[mid]! < target) lo = mid + 1;
    else hi = mid;
  }
  c.pos = lo;
}

/** The position of `doc` in docs[from, to), or -1. */
function find(docs: Uint32Array, from: number, to: number, doc: number): number {
  let lo = from;
  let hi = to;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (docs[mid]! < doc) lo = mid + 1;
    else hi = mid;
  }
  return lo < to && docs[lo] === doc ? lo : -1;
}
