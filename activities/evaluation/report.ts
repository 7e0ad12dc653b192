/**
 * The evaluation's end: every stored sample result read back and aggregated (the summary and the
 * dataset's pointer for checkpoint curves), then the HTML report and its JSON twin.
 */
import { z } from 'zod';
import type { ArtifactRef } from '../../core/artifacts.js';
import {
  EvalKeys,
  IdSchemas,
  storedSampleSchema,
  type EvaluationPointer,
  type FailedSample,
  type EvaluationSummary,
  type SampleEvaluation,
} from '../../core/contracts/index.js';
import { BadInputError } from '../errors.js';
import { heartbeat, parseActivityInput } from '../edge.js';
import { mapLimit } from '../../core/concurrency.js';
import {
  pickGallery,
  renderEvaluationReport,
  sampleScore,
  type GalleryItem,
} from '../reports/evaluation-report.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import { aggregateEvaluation } from './aggregate.js';
import { datasetKeyOf, readDatasetIndex } from './plan.js';

export const reportInputs = {
  aggregate: z.strictObject({
    evalId: IdSchemas.eval,
    dataset: z.string().min(1),
    limit: z.number().int().min(1).optional(),
    policy: z.strictObject({ model: z.string().nullable(), version: z.number().int().nullable() }),
    paid: z.strictObject({ total: z.number().int().min(0), byBackend: z.record(z.string(), z.number()) }),
    prices: z.record(z.string(), z.number().min(0)).optional(),
  }),
  report: z.strictObject({
    evalId: IdSchemas.eval,
    /** Best and worst samples shown with overlays. @default 4 */
    gallery: z.number().int().min(0).max(50).default(4),
  }),
};

export type EvalAggregateInput = z.input<typeof reportInputs.aggregate>;

/**
 * Every listed sample's stored result, in dataset order, split into scores and infrastructure
 * failures; a missing one is an error naming it.
 */
async function readResults(
  store: ArtifactStore,
  evalId: string,
  ids: readonly string[],
): Promise<{ scored: SampleEvaluation[]; failed: FailedSample[] }> {
  let done = 0;
  const results = await mapLimit(ids, 16, async (id) => {
    const key = EvalKeys.sampleResult(evalId, id);
    if (!(await store.head(key))) return undefined;
    const r = storedSampleSchema.safeParse(await store.getJson(key));
    if (!r.success)
      throw new BadInputError(`result ${key} is malformed: ${r.error.issues[0]?.message ?? ''}`, { key });
    if (++done % 50 === 0) heartbeat({ read: done });
    return r.data;
  });
  const missing = ids.filter((_, i) => results[i] === undefined);
  if (missing.length > 0) {
    throw new BadInputError(
      `evaluation ${evalId} has no stored result for ${missing.length} sample(s): ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', …' : ''}`,
      { missing: missing.slice(0, 100) },
    );
  }
  const scored: SampleEvaluation[] = [];
  const failed: FailedSample[] = [];
  for (const r of results) {
    if (r?.schema === 'segflow.eval-sample/1') scored.push(r);
    else if (r) failed.push(r);
  }
  return { scored, failed };
}

export function createReportActivities(store: ArtifactStore, now: () => Date) {
  return {
    /** Reads every sample's stored result and writes the aggregates (and the dataset's pointer). */
    async evalAggregate(
      raw: EvalAggregateInput,
    ): Promise<{ summary: ArtifactRef; metrics: EvaluationSummary }> {
      const input = parseActivityInput(reportInputs.aggregate, raw, 'evalAggregate');
      const index = await readDatasetIndex(store, input.dataset);
      const ids = index.samples
        .slice(0, Math.min(index.samples.length, input.limit ?? Infinity))
        .map((s) => s.id);
      const { scored, failed } = await readResults(store, input.evalId, ids);
      const datasetUri = input.dataset.startsWith('s3://') ? input.dataset : store.uriOf(input.dataset);
      const metrics = aggregateEvaluation(
        scored,
        {
          evalId: input.evalId,
          dataset: {
            uri: datasetUri,
            format: index.format,
            split: index.split,
            samples: index.samples.length,
          },
          policy: input.policy,
          expected: ids.length,
          paid: input.paid,
          ...(input.prices ? { prices: input.prices } : {}),
        },
        failed,
      );
      const summary = await store.putJson(EvalKeys.summary(input.evalId), metrics);
      const pointer: EvaluationPointer = {
        evalId: input.evalId,
        policy: input.policy,
        finishedAt: now().toISOString(),
        JF: metrics.vos?.overall.JF ?? null,
        J: metrics.vos?.overall.J ?? null,
        F: metrics.vos?.overall.F ?? null,
        gIoU: metrics.reasonSeg?.lisa.gIoU ?? null,
        cIoU: metrics.reasonSeg?.lisa.cIoU ?? null,
        outcome: metrics.reward?.outcome ?? null,
        summary,
      };
      await store.putJson(EvalKeys.byDataset(datasetKeyOf(datasetUri), input.evalId), pointer);
      return { summary, metrics };
    },

    /** The HTML report and its JSON twin, from the stored summary, results and the dataset's other evaluations. */
    async evalReport(
      raw: z.input<typeof reportInputs.report>,
    ): Promise<{ html: ArtifactRef; json: ArtifactRef }> {
      const input = parseActivityInput(reportInputs.report, raw, 'evalReport');
      const summary = await store.getInputJson<EvaluationSummary>(
        EvalKeys.summary(input.evalId),
        'evaluation summary',
      );
      const index = await readDatasetIndex(store, summary.dataset.uri);
      const ids = index.samples.slice(0, summary.samples.expected).map((s) => s.id);
      const { scored: samples } = await readResults(store, input.evalId, ids);
      const history: EvaluationPointer[] = [];
      for await (const o of store.list(EvalKeys.byDatasetPrefix(datasetKeyOf(summary.dataset.uri)))) {
        history.push(await store.getJson<EvaluationPointer>(o.key));
      }
      const { best, worst } = pickGallery(samples, input.gallery);
      const toItem = async (s: SampleEvaluation): Promise<GalleryItem> => ({
        sampleId: s.sampleId,
        ability: s.ability,
        score: sampleScore(s),
        caption: `${s.question.slice(0, 160)} — answer ${s.answerStatus}, frame ${s.overlayFrame ?? '–'}`,
        dataUrl: `data:image/jpeg;base64,${(await store.getBytes(s.overlay!.uri)).toString('base64')}`,
      });
      const { html, json } = renderEvaluationReport({
        summary,
        samples,
        history,
        best: await Promise.all(best.map(toItem)),
        worst: await Promise.all(worst.map(toItem)),
        generatedAt: now().toISOString(),
      });
      return {
        html: await store.putBytes(
          EvalKeys.reportHtml(input.evalId),
          Buffer.from(html),
          'text/html; charset=utf-8',
        ),
        json: await store.putJson(EvalKeys.reportJson(input.evalId), json),
      };
    },
  };
}
