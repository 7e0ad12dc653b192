import { WorkflowIds } from '../../core/contracts/keys.js';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { WorkflowHandle } from '@temporalio/client';
import { oneLine } from '../../core/monitor/details.js';
import { priorityFor, SearchAttributeKeys, TaskQueues } from '../../core/queues.js';
import { startWorkers, type RunningWorkers } from '../../workers/run.js';
import {
  segmentQuery,
  segmentQueryProgress,
  type SegmentQueryInput,
  type SegmentQueryResult,
} from '../../workflows/segment-query.js';
import { rolloutProgressQuery } from '../../workflows/rollout.js';
import { cliContext, withClient } from '../context.js';
import { policyProtocolFrom } from '../policy-protocol.js';
import { workflowResult } from '../failure.js';
import { nonNegativeInt, positiveInt } from '../option-parsers.js';
import { jsonDocument, outputFormat } from '../output.js';

interface RunOptions {
  media: string;
  query: string;
  ability?: string;
  frames: number;
  policyUrl?: string;
  policy?: string;
  policyVersion?: number;
  search?: string;
  models?: string;
  out?: string;
  id?: string;
  remote?: boolean;
  promptFile?: string;
}

async function watchProgress(
  handle: WorkflowHandle,
  rolloutHandle: () => WorkflowHandle | undefined,
  stop: () => boolean,
) {
  let last = '';
  while (!stop()) {
    try {
      const p = await handle.query(segmentQueryProgress);
      let line = `step: ${p.step}`;
      const rh = rolloutHandle();
      if (p.step === 'rollout' && rh) {
        try {
          const r = await rh.query(rolloutProgressQuery);
          line += ` · turn ${r.turn} ${r.step}${r.lastAction ? ` · ${r.lastAction}` : ''}`;
        } catch {
          /* the rollout has not started yet */
        }
      }
      if (line !== last) {
        console.error(`  ${new Date().toISOString().slice(11, 19)}  ${line}`);
        last = line;
      }
    } catch {
      /* not started yet, or finished */
    }
    await new Promise((r) => setTimeout(r, 400));
  }
}

export function register(program: Command): void {
  program
    .command('run')
    .description('segment the object a question describes in an image or video (segmentQuery workflow)')
    .requiredOption('--media <path>', 'image, video file, frame folder, or s3:// URI')
    .requiredOption('--query <text>', 'what to find, e.g. "the car that won the 2025 Qatar Grand Prix"')
    .option('--ability <kind>', 'in-video (no search) or one-hop/multi-hop/relational (search)', 'one-hop')
    .option('--frames <k>', 'frames shown to the policy', positiveInt('--frames'), 6)
    .option(
      '--policy-url <url>',
      'OpenAI-compatible policy server for the local worker (e.g. http://127.0.0.1:8000/v1)',
    )
    .option('--policy <model>', 'model or LoRA adapter name on the policy server (default: policy.model)')
    .option(
      '--policy-version <n>',
      'policy version recorded with the rollout',
      nonNegativeInt('--policy-version'),
    )
    .option('--search <backend>', 'search backend: local, serper, duckduckgo, retrieval, searxng')
    .option(
      '--prompt-file <path>',
      'YAML/JSON {search, nonSearch} system prompts used verbatim (default: policy.promptFile, else the shipped paraphrase)',
    )
    .option('--models <dir>', 'SAM2 ONNX folder (sam2-onnx v1) for the local worker')
    .option('--out <dir>', 'write the mask PNG(s) and the overlay here')
    .option('--id <workflowId>', 'workflow id (default: query-<timestamp>)')
    .option('--remote', 'do not start a local worker: rely on deployed workers')
    .action(async (opts: RunOptions, cmd: Command) => {
      if (opts.remote && (opts.policyUrl || opts.models)) {
        throw new Error(
          '--policy-url and --models configure the local worker; with --remote, set them on your deployed workers instead',
        );
      }
      const ctx = cliContext(cmd, {
        'policy.baseUrl': opts.policyUrl,
        'segment.modelsDir': opts.models,
        'search.backend': opts.search,
        'policy.promptFile': opts.promptFile,
      });
      const { config } = ctx;
      const protocol = policyProtocolFrom(config.policy);
      if (!opts.remote) {
        // The local worker needs a policy server and SAM2 files: say exactly what to pass.
        const missing: string[] = [];
        if (!config.policy.baseUrl) {
          missing.push(
            '--policy-url URL: an OpenAI-compatible server with the policy (e.g. vLLM serving Qwen3-VL: `vllm serve Qwen/Qwen3-VL-4B-Instruct` → http://HOST:8000/v1), or SEGFLOW_POLICY_URL',
          );
        }
        if (!config.segment.modelsDir) {
          missing.push(
            '--models DIR: a folder of SAM2 ONNX files (contract sam2-onnx v1; export with scripts/sam2-export/export_sam2_onnx.py, see scripts/sam2-export/README.md), or SEGFLOW_SEGMENT_MODELS_DIR',
          );
        }
        if (missing.length > 0) {
          throw new Error(
            `segr run needs:\n  ${missing.join('\n  ')}\n(or --remote to use deployed workers)`,
          );
        }
      }
      let workers: RunningWorkers | undefined;
      if (!opts.remote) {
        workers = await startWorkers(config, ctx.logger.child({ component: 'worker' }));
      }
      try {
        await withClient(config, async ({ client, store, ui: uiLink }) => {
          let finished = false;
          const workflowId = opts.id ?? WorkflowIds.stamped('query', new Date());
          const media = /^(s3|https?):\/\//.test(opts.media) ? opts.media : resolve(opts.media);
          const input: SegmentQueryInput = {
            media,
            query: opts.query,
            ability: opts.ability as SegmentQueryInput['ability'],
            frames: opts.frames,
            ...(opts.policy || opts.policyVersion !== undefined || Object.keys(protocol).length > 0
              ? {
                  policy: {
                    ...(opts.policy ? { model: opts.policy } : {}),
                    ...(opts.policyVersion !== undefined ? { version: opts.policyVersion } : {}),
                    ...protocol,
                  },
                }
              : {}),
            ...(opts.search ? { search: { backend: opts.search as 'local' } } : {}),
          };
          const handle = await client.workflow.start(segmentQuery, {
            taskQueue: TaskQueues.orchestrator,
            workflowId,
            args: [input],
            staticSummary: `segr run · "${oneLine(opts.query, 80)}" (${input.ability ?? 'one-hop'})`,
            staticDetails: `media \`${media}\` · ${input.frames ?? 6} frames · policy ${opts.policy ?? 'default'}${opts.policyVersion !== undefined ? ` v${opts.policyVersion}` : ''} · search ${opts.search ?? 'default'}`,
            typedSearchAttributes: [{ key: SearchAttributeKeys.runId, value: workflowId }],
            // Interactive: ahead of training and scheduled evaluations on the GPU queues.
            priority: priorityFor(config.priority, 'interactive', workflowId),
          });
          const ui = uiLink(workflowId);
          console.error(`segmentQuery ${workflowId} started: ${ui}`);
          const watcher = watchProgress(
            handle,
            () => client.workflow.getHandle(WorkflowIds.rolloutOf(workflowId)),
            () => finished,
          );
          let result: SegmentQueryResult;
          try {
            result = await workflowResult(handle, 'segmentQuery', ui);
          } finally {
            finished = true;
            await watcher;
          }
          const json = outputFormat(cmd) === 'json';
          const say = json ? () => {} : (line: string) => console.log(line);
          const a = result.answer;
          say(
            `\nanswer: ${a.status === 'ok' ? `keyframe ${a.keyframe}, bbox_2d ${JSON.stringify(a.box)}, point_2d ${JSON.stringify(a.point)}` : `none (${a.status}: ${a.problems.join('; ')})`}`,
          );
          say(`stop reason: ${result.stopReason}; turns ${result.rollout.turns}`);
          say(`search log (${result.searchLog.length}):`);
          for (const s of result.searchLog)
            say(`  ${s.tool} "${s.query}" via ${s.backend}${s.cached ? ' (cached)' : ''}`);
          if (result.grounded)
            say(
              `grounded (pixels): box ${JSON.stringify(result.grounded.box)}${result.grounded.point ? `, point ${JSON.stringify(result.grounded.point)}` : ''}`,
            );
          if (opts.out && result.masks) {
            const out = resolve(opts.out);
            await mkdir(out, { recursive: true });
            if (result.kind === 'image') {
              await store.downloadToFile(result.masks, join(out, 'mask.png'));
            } else {
              // Masks are named after the input's frames (00012.png for 00012.jpg), as datasets name them.
              const manifest = await store.getJson<{ frames: { source: string; mask: string }[] }>(
                result.masks.uri,
              );
              const names = new Map<string, string>();
              if (result.frameSet) {
                const set = await store.getJson<{ frames: { name: string; ref: { uri: string } }[] }>(
                  result.frameSet.uri,
                );
                for (const f of set.frames) names.set(f.ref.uri, f.name.replace(/\.[^.]+$/, ''));
              }
              for (const [i, f] of manifest.frames.entries()) {
                const name = names.get(f.source) ?? String(i).padStart(5, '0');
                if (await store.head(f.mask))
                  await store.downloadToFile(f.mask, join(out, 'masks', `${name}.png`));
              }
            }
            if (result.overlay) {
              await store.downloadToFile(
                result.overlay,
                join(out, `overlay${result.kind === 'image' ? '.png' : '.mp4'}`),
              );
            }
            say(`wrote masks${result.overlay ? ' and overlay' : ''} to ${out}`);
          }
          say(`result: ${result.result.uri}`);
          say(`web ui: ${ui}`);
          if (json)
            process.stdout.write(
              jsonDocument({
                workflowId,
                ui,
                result,
                ...(opts.out && result.masks ? { out: resolve(opts.out) } : {}),
              }),
            );
        });
      } finally {
        if (workers) await workers.shutdown();
      }
    });
}
