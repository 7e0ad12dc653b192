// `segr schedule eval|describe|trigger|delete`: a Temporal schedule that evaluates the newest
// checkpoint periodically. Each action starts `evaluation` with `latestFrom` (the pointer a training
// run keeps up to date) and `evalIdPrefix`, so an unchanged checkpoint is not evaluated twice: its
// results are found stored and only re-aggregated.
import { WorkflowIds } from '../../core/contracts/keys.js';
import { isSafeId, safeIdProblem } from '../../core/contracts/ids.js';
import { InvalidArgumentError, type Command } from 'commander';
import { ScheduleOverlapPolicy, type ScheduleOptions } from '@temporalio/client';
import { TaskQueues } from '../../core/queues.js';
import { evaluation, type EvaluationInput } from '../../workflows/evaluation.js';
import { cliContext, withClient } from '../context.js';
import { evaluationInputFrom, evaluationMetadata, parsePrice } from './eval.js';
import { configSchema, type SegflowConfig } from '../../core/config/schema.js';
import { positiveInt } from '../option-parsers.js';

interface ScheduleEvalOptions {
  id: string;
  dataset: string;
  latestFrom: string;
  every?: string;
  cron?: string;
  policy?: string;
  search?: string;
  concurrency?: number;
  limit?: number;
  searchPrice?: Record<string, number>;
  paused?: boolean;
}

/** The schedule `segr schedule eval` creates (exported for tests). */
export function evaluationSchedule(
  opts: ScheduleEvalOptions,
  priority: SegflowConfig['priority'] = configSchema.parse({}).priority,
): ScheduleOptions {
  if (!isSafeId('schedule', opts.id))
    throw new InvalidArgumentError(safeIdProblem('schedule', '--id', opts.id));
  if (!opts.every === !opts.cron)
    throw new InvalidArgumentError('give exactly one of --every (e.g. 6h, 1d) or --cron ("0 3 * * *")');
  if (opts.every && !/^\d+(\.\d+)?\s*(ms|s|m|h|d)$/.test(opts.every)) {
    throw new InvalidArgumentError(`--every "${opts.every}" must be a duration like 30m, 6h or 1d`);
  }
  const input: EvaluationInput = {
    ...evaluationInputFrom({ ...opts }),
    evalIdPrefix: opts.id,
  };
  return {
    scheduleId: opts.id,
    spec: opts.every
      ? { intervals: [{ every: opts.every as `${number}h` }] }
      : { cronExpressions: [opts.cron!] },
    action: {
      type: 'startWorkflow',
      workflowType: evaluation,
      taskQueue: TaskQueues.orchestrator,
      workflowId: WorkflowIds.scheduled(opts.id),
      args: [input],
      // Scheduled evaluations queue behind interactive `segr run`s; fairness by schedule id.
      ...evaluationMetadata(input, opts.id, priority),
    },
    // A slow evaluation is not started twice; a missed slot while the server was down is taken once.
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 hour' },
    state: {
      paused: opts.paused ?? false,
      note: `evaluate the newest checkpoint of ${opts.latestFrom} on ${opts.dataset}`,
    },
  };
}

export function register(program: Command): void {
  const schedule = program
    .command('schedule')
    .description('Temporal schedules: periodic evaluation of the newest checkpoint');
  schedule
    .command('eval')
    .description('create (or replace) a schedule that evaluates the newest checkpoint on a dataset')
    .requiredOption('--id <scheduleId>', 'schedule id; evaluations are named <id>-v<version>')
    .requiredOption('--dataset <index>', 'the dataset index `segr dataset prepare` printed')
    .requiredOption('--latest-from <pointer>', 'S3 pointer JSON {version, model?} of the newest checkpoint')
    .option('--every <duration>', 'interval, e.g. 6h or 1d')
    .option('--cron <expr>', 'cron expression, e.g. "0 3 * * *"')
    .option('--policy <model>', 'model name when the pointer names none')
    .option('--search <backend>', 'search backend')
    .option('--concurrency <n>', 'samples evaluated at once', positiveInt('--concurrency'))
    .option('--limit <n>', 'only the first n samples', positiveInt('--limit'))
    .option('--search-price <backend=usd>', 'price of one paid search call (repeatable)', parsePrice, {})
    .option('--paused', 'create it paused')
    .action(async (opts: ScheduleEvalOptions, cmd: Command) => {
      const { config } = cliContext(cmd);
      const options = evaluationSchedule(opts, config.priority);
      await withClient(config, async ({ client }) => {
        const existing = client.schedule.getHandle(opts.id);
        try {
          await existing.describe();
          await existing.delete();
          console.error(`replacing schedule ${opts.id}`);
        } catch {
          /* no such schedule yet */
        }
        await client.schedule.create(options);
        const d = await client.schedule.getHandle(opts.id).describe();
        console.log(
          `schedule ${opts.id} created; next runs: ${d.info.nextActionTimes
            .slice(0, 3)
            .map((t) => t.toISOString())
            .join(', ')}`,
        );
      });
    });
  for (const [name, what] of [
    ['describe', 'show a schedule and its recent runs'],
    ['trigger', 'run a schedule now'],
    ['delete', 'delete a schedule'],
  ] as const) {
    schedule
      .command(`${name} <scheduleId>`)
      .description(what)
      .action(async (id: string, _opts: unknown, cmd: Command) => {
        await withClient(cliContext(cmd).config, async ({ client }) => {
          const h = client.schedule.getHandle(id);
          if (name === 'trigger') await h.trigger();
          else if (name === 'delete') await h.delete();
          else {
            const d = await h.describe();
            console.log(
              JSON.stringify(
                {
                  id,
                  paused: d.state.paused,
                  note: d.state.note,
                  next: d.info.nextActionTimes.map((t) => t.toISOString()),
                  recent: d.info.recentActions.map((a) => ({
                    at: a.takenAt.toISOString(),
                    workflowId: a.action.workflow.workflowId,
                  })),
                },
                null,
                2,
              ),
            );
          }
          if (name !== 'describe') console.log(`${name}: ${id}`);
        });
      });
  }
}
