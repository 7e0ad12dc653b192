/**
 * The evaluation report: a self-contained HTML page (key figures, per-ability J/F/J&F table and
 * bars, ReasonSeg gIoU/cIoU under each convention, the mean outcome reward and its terms, search
 * calls and cost, stop reasons, metric curves across checkpoints, a gallery of the best and worst samples as data-URL overlays, every
 * sample in a table) and the same numbers as JSON. Pure: the activity fetches, this renders.
 */
import type {
  EvaluationPointer,
  EvaluationSummary,
  OutcomeReward,
  SampleEvaluation,
} from '../../core/contracts/index.js';
import { failedSamplesLine } from '../evaluation/aggregate.js';
import { cell, escapeHtml, kpi, page, table } from './html.js';
import { barChart, lineChart } from './svg.js';

export interface GalleryItem {
  sampleId: string;
  ability: string;
  /** J&F (video) or IoU (image). */
  score: number;
  caption: string;
  /** `data:image/jpeg;base64,…` */
  dataUrl: string;
}

export interface EvaluationReportInput {
  summary: EvaluationSummary;
  samples: SampleEvaluation[];
  /** Evaluations of the same dataset (this one included), for the checkpoint curves. */
  history: EvaluationPointer[];
  best: GalleryItem[];
  worst: GalleryItem[];
  /** ISO time the report was made (shown, and kept in the JSON). */
  generatedAt: string;
}

export interface EvaluationReportJson {
  schema: 'segflow.eval-report/1';
  generatedAt: string;
  metrics: EvaluationSummary;
  checkpoints: EvaluationPointer[];
  samples: {
    id: string;
    kind: string;
    ability: string;
    J: number;
    F: number;
    JF: number;
    iou: number | null;
    /** The sample's outcome reward; null without a trajectory or ground truth. */
    reward: OutcomeReward | null;
    answerStatus: string;
    stopReason: string;
    searches: number;
    error: string | null;
  }[];
  gallery: { best: string[]; worst: string[] };
}

/** IoU of an image sample (U = 0 → null: the conventions disagree). */
export function sampleIoU(s: SampleEvaluation): number | null {
  return s.union === 0 ? null : s.intersection / s.union;
}

/** The score the gallery ranks by: J&F for video samples, IoU (0 when U = 0) for images. */
export function sampleScore(s: SampleEvaluation): number {
  return s.kind === 'video' ? s.JF : (sampleIoU(s) ?? 0);
}

/** Best and worst `n` samples among those with an overlay (ties broken by id, so stable). */
export function pickGallery(
  samples: readonly SampleEvaluation[],
  n: number,
): { best: SampleEvaluation[]; worst: SampleEvaluation[] } {
  const withOverlay = samples
    .filter((s) => s.overlay !== null)
    .sort((a, b) => sampleScore(b) - sampleScore(a) || (a.sampleId < b.sampleId ? -1 : 1));
  const best = withOverlay.slice(0, n);
  const rest = withOverlay.slice(best.length);
  const worst = rest.slice(Math.max(0, rest.length - n)).reverse();
  return { best, worst };
}

const pct = (v: number | null | undefined) => cell(v === null || v === undefined ? v : v * 100, 1);
/** Stored JSON turns NaN into null: back to NaN for charts (a gap, not a zero). */
const asPercent = (v: number | null | undefined) => (typeof v === 'number' ? v * 100 : NaN);

function gallery(items: readonly GalleryItem[], cls: string): string {
  if (items.length === 0) return '<p>none</p>';
  return `<div class="gallery ${cls}">${items
    .map(
      (g) =>
        `<figure><img alt="${escapeHtml(`overlay of ${g.sampleId}`)}" src="${g.dataUrl}"><figcaption><b>${escapeHtml(g.sampleId)}</b> · ${escapeHtml(g.ability)} · score ${cell(g.score)}<br>${escapeHtml(g.caption)}</figcaption></figure>`,
    )
    .join('')}</div>`;
}

export function renderEvaluationReport(input: EvaluationReportInput): {
  html: string;
  json: EvaluationReportJson;
} {
  const { summary: s, samples } = input;
  // Summaries written before the outcome reward was recorded have none.
  const reward = s.reward ?? null;
  const body: string[] = [];
  const policy = `${s.policy.model ?? 'default model'}${s.policy.version !== null ? ` v${s.policy.version}` : ''}`;
  body.push(`<h1>Evaluation ${escapeHtml(s.evalId)}</h1>`);
  body.push(
    `<p class="meta">dataset ${escapeHtml(s.dataset.format)}/${escapeHtml(s.dataset.split)} (${s.dataset.samples} samples, ${escapeHtml(s.dataset.uri)}) · policy ${escapeHtml(policy)} · generated ${escapeHtml(input.generatedAt)}</p>`,
  );
  const figures: string[] = [];
  if (s.vos) {
    figures.push(kpi('J&F (overall)', pct(s.vos.overall.JF)));
    figures.push(kpi('J', pct(s.vos.overall.J)), kpi('F', pct(s.vos.overall.F)));
  }
  if (s.reasonSeg) {
    figures.push(kpi('gIoU (LISA)', pct(s.reasonSeg.lisa.gIoU)), kpi('cIoU', pct(s.reasonSeg.lisa.cIoU)));
  }
  if (reward) figures.push(kpi('outcome reward (0–4)', cell(reward.outcome, 3)));
  figures.push(
    kpi('samples scored', `${s.samples.scored}/${s.samples.expected}`),
    ...(s.samples.failed ? [kpi('samples failed (outage)', String(s.samples.failed))] : []),
    kpi('searches / sample', cell(s.search.perSample, 2)),
    kpi('search cost', s.search.costUsd === null ? 'n/a' : `$${s.search.costUsd.toFixed(4)}`),
  );
  body.push(`<div id="kpis">${figures.join('')}</div>`);
  const failedLine = failedSamplesLine(s);
  if (failedLine) {
    body.push('<h2>Failed samples (not scored)</h2>');
    body.push(`<p class="meta" id="failed-note">${escapeHtml(failedLine)}.</p>`);
    body.push(
      table(
        ['sample', 'ability', 'failure', 'message'],
        (s.samples.failedSamples ?? []).map((f) => [
          escapeHtml(f.sampleId),
          escapeHtml(f.ability),
          escapeHtml(f.type),
          escapeHtml(f.message),
        ]),
        { id: 'failed-table' },
      ),
    );
  }

  if (s.vos) {
    body.push('<h2>OK-VOS: J, F and J&amp;F per ability</h2>');
    const names = [...Object.keys(s.vos.perAbility)];
    const rows = names.map((a) => {
      const v = s.vos!.perAbility[a]!;
      return [escapeHtml(a), String(v.count), pct(v.J), pct(v.F), pct(v.JF)];
    });
    const o = s.vos.overall;
    rows.push(['<b>overall</b>', String(o.count), pct(o.J), pct(o.F), `<b>${pct(o.JF)}</b>`]);
    body.push(table(['ability', 'queries', 'J', 'F', 'J&F'], rows, { id: 'vos-table' }));
    body.push(
      '<p class="meta">Per query: means over all annotated frames; J&amp;F = (J + F) / 2; each query weighted equally (spec §9.1). An ability without queries shows n/a.</p>',
    );
    body.push(
      `<div class="charts">${barChart({
        title: 'J, F and J&F per ability (%)',
        series: ['J', 'F', 'J&F'],
        groups: [...names, 'overall'].map((a) => {
          const v = a === 'overall' ? o : s.vos!.perAbility[a]!;
          return { label: a, values: [asPercent(v.J), asPercent(v.F), asPercent(v.JF)] };
        }),
        yMax: 100,
        format: (v) => (Number.isFinite(v) ? v.toFixed(1) : 'n/a'),
      })}</div>`,
    );
  }

  if (s.reasonSeg) {
    body.push('<h2>ReasonSeg: gIoU and cIoU</h2>');
    const r = s.reasonSeg;
    body.push(
      table(
        ['convention (empty ground truth and prediction)', 'gIoU', 'cIoU', 'counted', 'skipped'],
        [
          [
            'LISA: IoU = 1',
            pct(r.lisa.gIoU),
            pct(r.lisa.cIoU),
            String(r.lisa.counted),
            String(r.lisa.skipped),
          ],
          [
            'Seg-Zero calculate_iou.py: IoU = 0',
            pct(r.segzero.gIoU),
            pct(r.segzero.cIoU),
            String(r.segzero.counted),
            String(r.segzero.skipped),
          ],
          [
            'Seg-Zero evaluation.py: sample skipped',
            pct(r.skip.gIoU),
            pct(r.skip.cIoU),
            String(r.skip.counted),
            String(r.skip.skipped),
          ],
        ],
        { id: 'reasonseg-table' },
      ),
    );
    body.push(
      `<div class="charts">${barChart({
        title: 'gIoU and cIoU by convention (%)',
        series: ['gIoU', 'cIoU'],
        groups: (['lisa', 'segzero', 'skip'] as const).map((k) => ({
          label: k,
          values: [asPercent(r[k].gIoU), asPercent(r[k].cIoU)],
        })),
        yMax: 100,
        format: (v) => (Number.isFinite(v) ? v.toFixed(1) : 'n/a'),
      })}</div>`,
    );
  }

  if (reward) {
    body.push('<h2>Outcome reward</h2>');
    body.push(
      table(
        ['term', 'mean'],
        [
          ['<b>outcome</b> = R_iou + R_box + R_point + R_frame', `<b>${cell(reward.outcome, 3)}</b>`],
          ['R_iou (box IoU &gt; 0.5)', cell(reward.iou, 3)],
          ['R_box (mean box L1 &lt; 10)', cell(reward.box, 3)],
          ['R_point (point within 100 of the GT point)', cell(reward.point, 3)],
          ['R_frame (max_conn_area of the keyframe)', cell(reward.frame, 3)],
          ['F (format)', cell(reward.format, 3)],
          ['samples with a reward', String(reward.samples)],
        ],
        { id: 'reward-table' },
      ),
      table(
        ['ability', 'samples', 'outcome'],
        Object.entries(reward.perAbility).map(([a, v]) => [
          escapeHtml(a),
          String(v.samples),
          cell(v.outcome, 3),
        ]),
        { id: 'reward-ability-table' },
      ),
    );
    body.push(
      '<p class="meta">The outcome terms of the Seg-ReSearch reward (spec §5.5, <code>hierarchical</code> preset, first keyframe) of each trajectory, with segflow\'s outcome gate: an answer the rollout could not use for segmentation earns 0. No process term (evaluation computes no IGR). Samples without a trajectory (the rollout failed) have no reward and are left out of the means.</p>',
    );
  }

  body.push('<h2>Search and stop reasons</h2>');
  const sr = s.search;
  body.push(
    table(
      ['search', 'value'],
      [
        ['calls', String(sr.calls)],
        ['served from cache', String(sr.cached)],
        ['distinct queries', String(sr.distinctQueries)],
        ['per sample', cell(sr.perSample, 2)],
        ...Object.entries(sr.byTool).map(([k, v]) => [`tool ${escapeHtml(k)}`, String(v)]),
        ...Object.entries(sr.byBackend).map(([k, v]) => [`backend ${escapeHtml(k)}`, String(v)]),
        ['paid backend calls (ledger)', String(sr.paidCalls)],
        ...Object.entries(sr.paidByBackend).map(([k, v]) => [`paid ${escapeHtml(k)}`, String(v)]),
        ['cost (USD)', sr.costUsd === null ? 'n/a (no prices given)' : sr.costUsd.toFixed(4)],
        ['completion tokens / sample', cell(s.tokens.completionPerSample, 1)],
      ],
      { id: 'search-table' },
    ),
  );
  body.push(
    table(
      ['stop reason', 'samples'],
      Object.entries(s.stopReasons).map(([k, v]) => [escapeHtml(k), String(v)]),
      { id: 'stop-table' },
    ),
    table(
      ['answer status', 'samples'],
      Object.entries(s.answerStatus).map(([k, v]) => [escapeHtml(k), String(v)]),
      { id: 'answer-table' },
    ),
  );

  body.push('<h2>Across checkpoints</h2>');
  const hist = [...input.history].sort((a, b) => (a.policy.version ?? -1) - (b.policy.version ?? -1));
  // One point per policy version: its most recent evaluation.
  const latestByVersion = new Map<number, EvaluationPointer>();
  for (const h of hist) {
    if (h.policy.version === null) continue;
    const prev = latestByVersion.get(h.policy.version);
    if (!prev || prev.finishedAt <= h.finishedAt) latestByVersion.set(h.policy.version, h);
  }
  const versioned = [...latestByVersion.values()];
  const series = [
    { name: 'J&F', key: 'JF' as const },
    { name: 'J', key: 'J' as const },
    { name: 'F', key: 'F' as const },
    { name: 'gIoU', key: 'gIoU' as const },
    { name: 'cIoU', key: 'cIoU' as const },
  ].filter((k) => versioned.some((h) => h[k.key] !== null));
  body.push(
    `<div class="charts">${lineChart({
      title: 'Metrics by policy version (%)',
      xLabel: 'policy version',
      yLabel: '%',
      yMin: 0,
      yMax: 100,
      format: (v) => v.toFixed(0),
      series: series.map((k) => ({
        name: k.name,
        points: versioned.map((h) => [h.policy.version!, asPercent(h[k.key])] as [number, number]),
      })),
    })}</div>`,
  );
  if (versioned.some((h) => typeof h.outcome === 'number')) {
    body.push(
      `<div class="charts">${lineChart({
        title: 'Mean outcome reward by policy version',
        xLabel: 'policy version',
        yLabel: 'outcome reward',
        yMin: 0,
        yMax: 4,
        format: (v) => v.toFixed(2),
        series: [
          {
            name: 'outcome',
            points: versioned.map((h) => [h.policy.version!, h.outcome ?? NaN] as [number, number]),
          },
        ],
      })}</div>`,
    );
  }
  body.push(
    table(
      ['evaluation', 'model', 'version', 'J&F', 'gIoU', 'cIoU', 'outcome', 'finished'],
      hist.map((h) => [
        escapeHtml(h.evalId),
        escapeHtml(h.policy.model ?? ''),
        h.policy.version === null ? '' : String(h.policy.version),
        pct(h.JF),
        pct(h.gIoU),
        pct(h.cIoU),
        cell(h.outcome, 3),
        escapeHtml(h.finishedAt),
      ]),
      { id: 'checkpoint-table' },
    ),
  );

  body.push('<h2>Best samples</h2>', gallery(input.best, 'best'));
  body.push('<h2>Worst samples</h2>', gallery(input.worst, 'worst'));
  body.push('<p class="meta">Red: predicted mask. Green outline: ground truth.</p>');

  body.push('<h2>All samples</h2>');
  const sorted = [...samples].sort((a, b) => (a.sampleId < b.sampleId ? -1 : 1));
  body.push(
    `<div class="scroll">${table(
      [
        'sample',
        'question',
        'kind',
        'ability',
        'J',
        'F',
        'J&F',
        'IoU',
        'reward',
        'answer',
        'stop reason',
        'searches',
        'error',
      ],
      sorted.map((x) => [
        escapeHtml(x.sampleId),
        escapeHtml(x.question.length > 120 ? `${x.question.slice(0, 119)}…` : x.question),
        x.kind,
        escapeHtml(x.ability),
        pct(x.J),
        pct(x.F),
        pct(x.JF),
        pct(sampleIoU(x)),
        cell(x.reward?.outcome, 2),
        escapeHtml(x.answerStatus),
        escapeHtml(x.stopReason),
        String(x.searches.length),
        escapeHtml(x.error ?? ''),
      ]),
      { id: 'samples-table' },
    )}</div>`,
  );

  const json: EvaluationReportJson = {
    schema: 'segflow.eval-report/1',
    generatedAt: input.generatedAt,
    metrics: s,
    checkpoints: hist,
    samples: sorted.map((x) => ({
      id: x.sampleId,
      kind: x.kind,
      ability: x.ability,
      J: x.J,
      F: x.F,
      JF: x.JF,
      iou: sampleIoU(x),
      reward: x.reward ?? null,
      answerStatus: x.answerStatus,
      stopReason: x.stopReason,
      searches: x.searches.length,
      error: x.error,
    })),
    gallery: { best: input.best.map((g) => g.sampleId), worst: input.worst.map((g) => g.sampleId) },
  };
  return { html: page(`Evaluation ${s.evalId}`, body.join('\n')), json };
}
