// `segr eval`: evaluate a policy on a prepared dataset (the `evaluation` workflow) and fetch its
// report; `segr report training`: the training dashboard from a run's per-step metric records.
import { WorkflowIds } from '../../core/contracts/keys.js';
import { isSafeId, safeIdProblem } from '../../core/contracts/ids.js';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { priorityFor, SearchAttributeKeys, TaskQueues, type WorkKind } from '../../core/queues.js';
import type { SegflowConfig } from '../../core/config/schema.js';
import { BadInputError } from '../../activities/errors.js';
import {
  parseTrainingMetrics,
  renderTrainingDashboard,
} from '../../activities/reports/training-dashboard.js';
import { EvaluationLimits, type EvaluationSummary } from '../../core/contracts/evaluation.js';
import { failedSamplesLine } from '../../activities/evaluation/aggregate.js';
import { ArtifactStore } from '../../activities/storage/artifact-store.js';
import { startWorkers, type RunningWorkers } from '../../workers/run.js';
import {
  evaluation,
  evaluationProgressQuery,
  type EvaluationInput,
  type EvaluationProgress,
  type EvaluationResult,
} from '../../workflows/evaluation.js';
import { cliContext, withClient } from '../context.js';
import { policyProtocolFrom } from '../policy-protocol.js';
import { workflowResult } from '../failure.js';
import { intInRange, positiveInt, nonNegativeInt, nonNegativeNumber } from '../option-parsers.js';
import { emit, outputFormat } from '../output.js';

/** `--search-price serper=0.001` (repeatable) → {serper: 0.001}. */
export function parsePrice(value: string, previous: Record<string, number> = {}): Record<string, number> {
  const m = /^([a-z]+)=([0-9]*\.?[0-9]+(?:e-?\d+)?)$/i.exec(value);
  if (!m)
    throw new InvalidArgumentError(`--search-price "${value}" must look like backend=USD, e.g. serper=0.001`);
  return { ...previous, [m[1]!]: Number(m[2]) };
}

/** The options that shape the evaluation input (shared by `segr eval` and `segr schedule eval`). */
export interface EvaluationCliOptions {
  dataset: string;
  policy?: string;
  policyVersion?: number;
  latestFrom?: string;
  search?: string;
  concurrency?: number;
  limit?: number;
  pageSize?: number;
  searchPrice?: Record<string, number>;
  gallery?: number;
  temperature?: number;
  seed?: number;
  fresh?: boolean;
  outageTolerance?: number;
}

/**
 * The evaluation workflow input the options describe; `config` adds the policy protocol
 * (`policy.promptFile`, `policy.coordinates`) and the SAM2 prompting (`segment.evalPromptRule`,
 * `segment.imagePrompt`).
 */
export function evaluationInputFrom(
  opts: EvaluationCliOptions,
  config?: Pick<SegflowConfig, 'policy' | 'segment'>,
): EvaluationInput {
  if (!/^s3:\/\//.test(opts.dataset) && !/^datasets\/indexes\//.test(opts.dataset)) {
    throw new InvalidArgumentError(
      `--dataset "${opts.dataset}" must be the index \`segr dataset prepare\` printed (an s3://… URI or a datasets/indexes/… key)`,
    );
  }
  return {
    dataset: opts.dataset,
    policy: {
      ...(opts.policy ? { model: opts.policy } : {}),
      ...(opts.policyVersion !== undefined ? { version: opts.policyVersion } : {}),
      ...(opts.latestFrom ? { latestFrom: opts.latestFrom } : {}),
      sampling: {
        temperature: opts.temperature ?? 0,
        ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
      },
      ...(config ? policyProtocolFrom(config.policy) : {}),
    },
    ...(config
      ? { segmentation: { when: config.segment.evalPromptRule, imagePrompt: config.segment.imagePrompt } }
      : {}),
    ...(opts.search ? { search: { backend: opts.search as 'local' } } : {}),
    ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
    ...(opts.limit ? { limit: opts.limit } : {}),
    ...(opts.pageSize ? { pageSize: opts.pageSize } : {}),
    ...(opts.searchPrice && Object.keys(opts.searchPrice).length > 0
      ? { searchPrices: opts.searchPrice }
      : {}),
    ...(opts.gallery !== undefined ? { gallery: opts.gallery } : {}),
    ...(opts.fresh ? { fresh: true } : {}),
    ...(opts.outageTolerance !== undefined ? { outageToleranceSeconds: opts.outageTolerance } : {}),
  };
}

/** Step records from a local JSON file, a JSONL file, a folder of JSON files, or an S3 prefix. */
export async function readTrainingRecords(
  source: string,
  store: () => ArtifactStore,
): Promise<{ value: unknown; origin: string }[]> {
  const out: { value: unknown; origin: string }[] = [];
  const parseText = (text: string, origin: string) => {
    const trimmed = text.trim();
    if (!trimmed) return;
    try {
      const v = JSON.parse(trimmed) as unknown;
      for (const [i, item] of (Array.isArray(v) ? v : [v]).entries())
        out.push({ value: item, origin: Array.isArray(v) ? `${origin}[${i}]` : origin });
      return;
    } catch {
      /* JSONL */
    }
    trimmed.split('\n').forEach((line, i) => {
      if (!line.trim()) return;
      try {
        out.push({ value: JSON.parse(line), origin: `${origin} line ${i + 1}` });
      } catch (err) {
        throw new BadInputError(`${origin} line ${i + 1} is not JSON: ${(err as Error).message}`);
      }
    });
  };
  if (source.startsWith('s3://') || source.startsWith('runs/')) {
    const s = store();
    const prefix = source.startsWith('s3://') ? source.replace(/^s3:\/\/[^/]+\//, '') : source;
    for await (const o of s.list(prefix)) {
      // Under a run's prefix only the step metrics (trainingRun: steps/<k>/metrics.json) are records.
      if (o.key.endsWith('metrics.json') || o.key.endsWith('.jsonl'))
        parseText((await s.getBytes(o.key)).toString('utf8'), s.uriOf(o.key));
    }
  } else {
    let st;
    try {
      st = await stat(source);
    } catch {
      throw new BadInputError(
        `--metrics ${source} does not exist (a JSON/JSONL file, a folder of them, or an s3:// prefix)`,
      );
    }
    const files = st.isDirectory()
      ? (await readdir(source))
          .filter((n) => /\.jsonl?$/.test(n))
          .sort()
          .map((n) => join(source, n))
      : [source];
    for (const f of files) parseText(await readFile(f, 'utf8'), f);
  }
  if (out.length === 0) throw new BadInputError(`--metrics ${source} holds no step metrics records`);
  return out;
}

/**
 * The watcher's progress line: `samples: 41/48 done (41 evaluated, 0 already stored), 4 running`.
 * Done counts every page so far (`offset` is only where the current page starts, so it stays 0
 * through a one-page evaluation); a failed sample (outage) is evaluated and says so.
 */
export function evaluationProgressLine(p: EvaluationProgress): string {
  const failed = p.failed ? `, ${p.failed} of them failed by an outage` : '';
  return `${p.step}: ${p.evaluated + p.skipped}/${p.total ?? '?'} done (${p.evaluated} evaluated${failed}, ${p.skipped} already stored), ${p.running} running`;
}

/**
 * The summary's mean outcome reward as one line:
 * `outcome reward 1.234 (iou 0.10, box 0.00, point 0.30, frame 0.83; n=48)`.
 */
export function outcomeRewardLine(m: Pick<EvaluationSummary, 'reward'>): string {
  // Summaries written before the outcome reward was recorded have none.
  const r = m.reward ?? null;
  if (r === null) return 'outcome reward n/a (no sample has a trajectory to score)';
  return `outcome reward ${r.outcome.toFixed(3)} (iou ${r.iou.toFixed(2)}, box ${r.box.toFixed(2)}, point ${r.point.toFixed(2)}, frame ${r.frame.toFixed(2)}; n=${r.samples})`;
}

interface EvalOptions extends EvaluationCliOptions {
  report?: string;
  reportJson?: string;
  /** Old spelling of reportJson. */
  json?: string;
  id?: string;
  policyUrl?: string;
  models?: string;
  remote?: boolean;
  promptFile?: string;
  sam2Prompt?: string;
  imagePrompt?: string;
}

/**
 * What the Web UI shows for an evaluation start (its list row and details), its search attributes
 * and its task-queue priority (`priority.evaluation`, fairness by evaluation id).
 */
export function evaluationMetadata(
  input: EvaluationInput,
  evalId: string,
  priority: SegflowConfig['priority'],
  kind: WorkKind = 'evaluation',
) {
  const policy = input.policy?.latestFrom
    ? `newest of ${input.policy.latestFrom}`
    : `${input.policy?.model ?? 'default'}${input.policy?.version !== undefined ? ` v${input.policy.version}` : ''}`;
  return {
    staticSummary: `eval · ${input.dataset.split('/').slice(-2).join('/')} · policy ${policy}`,
    staticDetails: `dataset \`${input.dataset}\` · policy ${policy} · search ${input.search?.backend ?? 'default'} · concurrency ${input.concurrency ?? 4}${input.limit ? ` · first ${input.limit} samples` : ''}`,
    typedSearchAttributes: [{ key: SearchAttributeKeys.runId, value: evalId }],
    priority: priorityFor(priority, kind, evalId),
  };
}

export function register(program: Command): void {
  program
    .command('eval')
    .description(
      'evaluate a policy on a prepared dataset (evaluation workflow): OK-VOS J/F/J&F per ability, ReasonSeg gIoU/cIoU, mean outcome reward, search calls and cost, stop reasons; writes an HTML report',
    )
    .requiredOption(
      '--dataset <index>',
      'the dataset index `segr dataset prepare` printed (s3://… or datasets/indexes/… key)',
    )
    .option('--policy <model>', 'model or LoRA adapter name on the policy server (default: policy.model)')
    .option(
      '--policy-version <n>',
      'policy version recorded with the results',
      nonNegativeInt('--policy-version'),
    )
    .option(
      '--latest-from <pointer>',
      'evaluate the newest checkpoint named by this S3 pointer JSON {version, model?}',
    )
    .option('--search <backend>', 'search backend: local, serper, duckduckgo, retrieval, searxng')
    .option(
      '--prompt-file <path>',
      'YAML/JSON {search, nonSearch} system prompts used verbatim (default: policy.promptFile, else the shipped paraphrase)',
    )
    .addOption(
      new Option(
        '--sam2-prompt <rule>',
        'when SAM2 is prompted: reference (keyframe in the video, non-zero box, as sam2_okvos.py) or usable (only answers the rollout check accepts) (default: segment.evalPromptRule)',
      ).choices(['reference', 'usable']),
    )
    .addOption(
      new Option(
        '--image-prompt <protocol>',
        'images (ReasonSeg): box (one box-only single-mask call) or box-then-point (default: segment.imagePrompt)',
      ).choices(['box', 'box-then-point']),
    )
    .option(
      '--temperature <t>',
      'sampling temperature (default 0: greedy, as evaluation should be; > 0 with --seed measures sampling noise)',
      nonNegativeNumber('--temperature'),
    )
    .option(
      '--seed <n>',
      'sampling seed: sample i of the dataset is decoded with seed + i',
      nonNegativeInt('--seed'),
    )
    .option(
      '--concurrency <n>',
      `samples evaluated at once (at most ${EvaluationLimits.concurrency})`,
      intInRange('--concurrency', 1, EvaluationLimits.concurrency),
      4,
    )
    .option('--limit <n>', 'evaluate only the first n samples', positiveInt('--limit'))
    .option(
      '--page-size <n>',
      `samples per workflow run before continue-as-new (at most ${EvaluationLimits.pageSize})`,
      intInRange('--page-size', 1, EvaluationLimits.pageSize),
    )
    .option('--search-price <backend=usd>', 'price of one paid search call (repeatable)', parsePrice, {})
    .option('--gallery <n>', 'best and worst samples shown in the report', nonNegativeInt('--gallery'))
    .option(
      '--outage-tolerance <seconds>',
      "how long a sample's policy, search and S3 calls retry an outage before it is stored as failed (default 900)",
      nonNegativeInt('--outage-tolerance'),
    )
    .option('--report <file>', 'write the HTML report here')
    .option('--report-json <file>', 'write the JSON report here')
    .option('--json <file>', 'old spelling of --report-json (for JSON on stdout use --output json)')
    .option(
      '--id <evalId>',
      'evaluation id (workflow id; letters, digits, . _ -); re-using one resumes it and evaluates the samples that failed for an infrastructure reason again (same policy, search, segmenter and settings only; see --fresh)',
    )
    .option(
      '--fresh',
      'evaluate every sample again even where results of this --id are stored (needed to reuse an id with another policy, search backend, segmenter or settings)',
    )
    .option('--policy-url <url>', 'OpenAI-compatible policy server for the local worker')
    .option('--models <dir>', 'SAM2 ONNX folder for the local worker')
    .option('--remote', 'do not start a local worker: rely on deployed workers')
    .action(async (opts: EvalOptions, cmd: Command) => {
      if (opts.remote && (opts.policyUrl || opts.models)) {
        throw new Error(
          '--policy-url and --models configure the local worker; with --remote, set them on your deployed workers',
        );
      }
      if (opts.id !== undefined && !isSafeId('eval', opts.id)) {
        throw new InvalidArgumentError(safeIdProblem('eval', '--id', opts.id));
      }
      const ctx = cliContext(cmd, {
        'policy.baseUrl': opts.policyUrl,
        'segment.modelsDir': opts.models,
        'search.backend': opts.search,
        'policy.promptFile': opts.promptFile,
        'segment.evalPromptRule': opts.sam2Prompt,
        'segment.imagePrompt': opts.imagePrompt,
      });
      const { config } = ctx;
      const input = evaluationInputFrom(opts, config);
      let workers: RunningWorkers | undefined;
      if (!opts.remote) workers = await startWorkers(config, ctx.logger.child({ component: 'worker' }));
      try {
        await withClient(config, async ({ client, store, ui: uiLink }) => {
          let finished = false;
          const workflowId = opts.id ?? WorkflowIds.stamped('eval', new Date());
          const handle = await client.workflow.start(evaluation, {
            taskQueue: TaskQueues.orchestrator,
            workflowId,
            args: [{ ...input, evalId: workflowId }],
            ...evaluationMetadata(input, workflowId, config.priority),
          });
          const ui = uiLink(workflowId);
          console.error(`evaluation ${workflowId} started: ${ui}`);
          const watcher = (async () => {
            let last = '';
            while (!finished) {
              try {
                const p = await handle.query(evaluationProgressQuery);
                const line = evaluationProgressLine(p);
                if (line !== last) console.error(`  ${new Date().toISOString().slice(11, 19)}  ${line}`);
                last = line;
              } catch {
                /* between runs (continue-as-new) or finished */
              }
              await new Promise((r) => setTimeout(r, 1000));
            }
          })();
          let result: EvaluationResult;
          try {
            result = await workflowResult(handle, 'evaluation', ui);
          } finally {
            finished = true;
            await watcher;
          }
          const m = result.metrics;
          const say = outputFormat(cmd) === 'json' ? () => {} : (line: string) => console.log(line);
          const reportJson = opts.reportJson ?? opts.json;
          const p = (v: number | null | undefined) =>
            typeof v === 'number' && Number.isFinite(v) ? (v * 100).toFixed(1) : 'n/a';
          if (m.vos) {
            say('ability      queries      J      F    J&F');
            for (const [a, v] of [...Object.entries(m.vos.perAbility), ['overall', m.vos.overall] as const])
              say(
                `${a.padEnd(12)} ${String(v.count).padStart(7)} ${p(v.J).padStart(6)} ${p(v.F).padStart(6)} ${p(v.JF).padStart(6)}`,
              );
          }
          if (m.reasonSeg)
            say(
              `ReasonSeg gIoU ${p(m.reasonSeg.lisa.gIoU)} cIoU ${p(m.reasonSeg.lisa.cIoU)} (LISA); gIoU ${p(m.reasonSeg.segzero.gIoU)} (Seg-Zero, empty → 0)`,
            );
          say(outcomeRewardLine(m));
          say(
            `searches ${m.search.calls} (${m.search.cached} cached), paid ${m.search.paidCalls}${m.search.costUsd !== null ? `, cost $${m.search.costUsd.toFixed(4)}` : ''}; stop reasons ${JSON.stringify(m.stopReasons)}`,
          );
          const failedLine = failedSamplesLine(m);
          // On stderr too, so a person reading `--output json` still sees it.
          if (failedLine) console.error(`warning: ${failedLine}`);
          if (opts.report) await store.downloadToFile(result.report.html, opts.report);
          if (reportJson) await store.downloadToFile(result.report.json, reportJson);
          if (opts.report) say(`report: ${opts.report}`);
          emit(
            cmd,
            {
              evalId: workflowId,
              ui,
              metrics: m,
              failed: m.samples.failed ?? 0,
              summary: result.summary.uri,
              report: { html: result.report.html.uri, json: result.report.json.uri },
              ...(opts.report ? { reportFile: opts.report } : {}),
              ...(reportJson ? { reportJsonFile: reportJson } : {}),
            },
            `summary: ${result.summary.uri}\nreport: ${result.report.html.uri}`,
          );
        });
      } finally {
        if (workers) await workers.shutdown();
      }
    });

  const report = program.command('report').description('reports from stored metrics');
  report
    .command('training')
    .description(
      'the training dashboard (reward components, searches per trajectory, response lengths, policy versions) from per-step metric records',
    )
    .requiredOption(
      '--metrics <source>',
      'a JSON/JSONL file, a folder of them, or an S3 prefix (runs/<run>/steps/: every */metrics.json)',
    )
    .requiredOption('--out <file>', 'where to write the HTML dashboard')
    .option('--title <text>', 'page title')
    .action(async (opts: { metrics: string; out: string; title?: string }, cmd: Command) => {
      const { config } = cliContext(cmd);
      let store: ArtifactStore | undefined;
      try {
        const records = parseTrainingMetrics(
          await readTrainingRecords(opts.metrics, () => (store ??= ArtifactStore.fromConfig(config.s3))),
        );
        const html = renderTrainingDashboard(records, {
          generatedAt: new Date().toISOString(),
          ...(opts.title ? { title: opts.title } : {}),
        });
        await writeFile(opts.out, html);
        emit(cmd, { out: opts.out, steps: records.length }, `wrote ${opts.out} (${records.length} steps)`);
      } finally {
        store?.client.destroy();
      }
    });
}
