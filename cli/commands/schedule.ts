// `segr schedule eval|update|list|describe|pause|unpause|trigger|delete`: a Temporal schedule that evaluates the newest
// checkpoint periodically. Each action starts `evaluation` with `latestFrom` (the pointer a training
// run keeps up to date) and `evalIdPrefix`, so an unchanged checkpoint is not evaluated twice: its
// results are found stored and only re-aggregated.
import { WorkflowIds } from '../../core/contracts/keys.js';
import { isSafeId, safeIdProblem } from '../../core/contracts/ids.js';
import { InvalidArgumentError, type Command } from 'commander';
import {
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleOptions,
  type ScheduleSummary,
} from '@temporalio/client';
import { TaskQueues } from '../../core/queues.js';
import { evaluation, type EvaluationInput } from '../../workflows/evaluation.js';
import { cliContext, withClient } from '../context.js';
import { evaluationInputFrom, evaluationMetadata, parsePrice } from './eval.js';
import { configSchema, type SegflowConfig } from '../../core/config/schema.js';
import { intInRange, positiveInt } from '../option-parsers.js';
import { EvaluationLimits } from '../../core/contracts/evaluation.js';
import { emit } from '../output.js';

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
  /** Adds the policy protocol and SAM2 prompting of the config (see `evaluationInputFrom`). */
  config?: Pick<SegflowConfig, 'policy' | 'segment'>,
): ScheduleOptions {
  if (!isSafeId('schedule', opts.id))
    throw new InvalidArgumentError(safeIdProblem('schedule', '--id', opts.id));
  if (!opts.every === !opts.cron)
    throw new InvalidArgumentError('give exactly one of --every (e.g. 6h, 1d) or --cron ("0 3 * * *")');
  if (opts.every && !/^\d+(\.\d+)?\s*(ms|s|m|h|d)$/.test(opts.every)) {
    throw new InvalidArgumentError(`--every "${opts.every}" must be a duration like 30m, 6h or 1d`);
  }
  const input: EvaluationInput = {
    ...evaluationInputFrom({ ...opts }, config),
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

/** One row of `segr schedule list` (exported for tests). */
export interface ScheduleListRow {
  id: string;
  paused: boolean;
  note: string | null;
  workflowType: string | null;
  next: string | null;
  lastAction: { at: string; workflowId: string } | null;
}

export function scheduleListRow(s: ScheduleSummary): ScheduleListRow {
  const last = s.info.recentActions.at(-1);
  return {
    id: s.scheduleId,
    paused: s.state.paused,
    note: s.state.note ?? null,
    workflowType: s.action?.workflowType ?? null,
    next: s.info.nextActionTimes[0]?.toISOString() ?? null,
    lastAction: last ? { at: last.takenAt.toISOString(), workflowId: last.action.workflow.workflowId } : null,
  };
}

/** The text table of `segr schedule list`: id, state, next run, last action. */
export function formatScheduleList(rows: readonly ScheduleListRow[]): string {
  if (rows.length === 0) return 'no schedules';
  const table = [
    ['ID', 'STATE', 'NEXT RUN', 'LAST ACTION'],
    ...rows.map((r) => [
      r.id,
      r.paused ? 'paused' : 'active',
      r.next ?? '–',
      r.lastAction ? `${r.lastAction.at} ${r.lastAction.workflowId}` : '–',
    ]),
  ];
  const widths = table[0]!.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
  return table
    .map((row) => row.map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  '))
    .join('\n');
}

/**
 * Changes an existing schedule in place (`handle.update`) to `options`: spec, action, policies and
 * state. Returns false when there is no such schedule.
 */
async function updateSchedule(client: Client, options: ScheduleOptions): Promise<boolean> {
  const handle = client.schedule.getHandle(options.scheduleId);
  try {
    await handle.update(() => ({
      spec: options.spec,
      action: options.action,
      ...(options.policies ? { policies: options.policies } : {}),
      state: {
        paused: options.state?.paused ?? false,
        ...(options.state?.note ? { note: options.state.note } : {}),
      },
    }));
    return true;
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return false;
    throw err;
  }
}

async function nextRuns(client: Client, id: string): Promise<string[]> {
  const d = await client.schedule.getHandle(id).describe();
  return d.info.nextActionTimes.map((t) => t.toISOString());
}

/** The options `schedule eval` and `schedule update` share. */
function evalScheduleOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--id <scheduleId>', 'schedule id; evaluations are named <id>-v<version>')
    .requiredOption('--dataset <index>', 'the dataset index `segr dataset prepare` printed')
    .requiredOption('--latest-from <pointer>', 'S3 pointer JSON {version, model?} of the newest checkpoint')
    .option('--every <duration>', 'interval, e.g. 6h or 1d')
    .option('--cron <expr>', 'cron expression, e.g. "0 3 * * *"')
    .option('--policy <model>', 'model name when the pointer names none')
    .option('--search <backend>', 'search backend')
    .option(
      '--concurrency <n>',
      `samples evaluated at once (at most ${EvaluationLimits.concurrency})`,
      intInRange('--concurrency', 1, EvaluationLimits.concurrency),
    )
    .option('--limit <n>', 'only the first n samples', positiveInt('--limit'))
    .option('--search-price <backend=usd>', 'price of one paid search call (repeatable)', parsePrice, {})
    .option('--paused', 'leave it paused');
}

export function register(program: Command): void {
  const schedule = program
    .command('schedule')
    .description('Temporal schedules: periodic evaluation of the newest checkpoint');
  evalScheduleOptions(
    schedule
      .command('eval')
      .description(
        'create a schedule that evaluates the newest checkpoint on a dataset (an existing one with this id is updated in place)',
      ),
  ).action(async (opts: ScheduleEvalOptions, cmd: Command) => {
    const { config } = cliContext(cmd);
    const options = evaluationSchedule(opts, config.priority, config);
    await withClient(config, async ({ client }) => {
      const updated = await updateSchedule(client, options);
      if (updated) console.error(`replacing schedule ${opts.id}`);
      else await client.schedule.create(options);
      const next = await nextRuns(client, opts.id);
      emit(
        cmd,
        { id: opts.id, action: updated ? 'updated' : 'created', next },
        `schedule ${opts.id} created; next runs: ${next.slice(0, 3).join(', ')}`,
      );
    });
  });
  evalScheduleOptions(
    schedule
      .command('update')
      .description('change an existing `schedule eval` schedule in place (handle.update); it must exist'),
  ).action(async (opts: ScheduleEvalOptions, cmd: Command) => {
    const { config } = cliContext(cmd);
    const options = evaluationSchedule(opts, config.priority, config);
    await withClient(config, async ({ client }) => {
      if (!(await updateSchedule(client, options)))
        throw new Error(`no schedule ${opts.id}: create it with segr schedule eval`);
      const next = await nextRuns(client, opts.id);
      emit(
        cmd,
        { id: opts.id, action: 'updated', next },
        `schedule ${opts.id} updated; next runs: ${next.slice(0, 3).join(', ')}`,
      );
    });
  });
  schedule
    .command('list')
    .description('every schedule: id, paused or active, next run, last action')
    .action(async (_opts: unknown, cmd: Command) => {
      await withClient(cliContext(cmd).config, async ({ client }) => {
        const rows: ScheduleListRow[] = [];
        for await (const s of client.schedule.list()) rows.push(scheduleListRow(s));
        rows.sort((a, b) => a.id.localeCompare(b.id));
        emit(cmd, { schedules: rows }, formatScheduleList(rows));
      });
    });
  for (const name of ['pause', 'unpause'] as const) {
    schedule
      .command(`${name} <scheduleId>`)
      .description(name === 'pause' ? 'pause a schedule (no new actions)' : 'unpause a paused schedule')
      .option('--note <text>', 'why (shown with the schedule)')
      .action(async (id: string, opts: { note?: string }, cmd: Command) => {
        await withClient(cliContext(cmd).config, async ({ client }) => {
          const h = client.schedule.getHandle(id);
          await (name === 'pause' ? h.pause(opts.note) : h.unpause(opts.note));
          emit(cmd, { action: name, id }, `${name}: ${id}`);
        });
      });
  }
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
            const doc = {
              id,
              paused: d.state.paused,
              note: d.state.note,
              next: d.info.nextActionTimes.map((t) => t.toISOString()),
              recent: d.info.recentActions.map((a) => ({
                at: a.takenAt.toISOString(),
                workflowId: a.action.workflow.workflowId,
              })),
            };
            // describe prints JSON in both formats (as it always has).
            console.log(JSON.stringify(doc, null, 2));
            return;
          }
          emit(cmd, { action: name, id }, `${name}: ${id}`);
        });
      });
  }
}
