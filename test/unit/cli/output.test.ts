// The global `-o, --output text|json`: option resolution (the old `--json` flags are aliases,
// `eval --json <file>` is not), commander refusing other formats, `emit`, and the pure JSON/text
// renderings of `train status` and `schedule list`. No server is needed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Command } from 'commander';
import type { ScheduleSummary } from '@temporalio/client';
import { buildProgram } from '../../../cli/main.js';
import { emit, outputFormat, type OutputFormat } from '../../../cli/output.js';
import { formatScheduleList, scheduleListRow } from '../../../cli/commands/schedule.js';
import { formatStatus, statusDocument } from '../../../cli/commands/train.js';
import type { TrainingStatus } from '../../../workflows/training-run.js';

/** Every command quiet and throwing instead of exiting. */
function quiet(cmd: Command, errors: string[]): void {
  cmd.exitOverride().configureOutput({ writeErr: (s) => errors.push(s), writeOut: () => {} });
  for (const sub of cmd.commands) quiet(sub, errors);
}

function find(program: Command, path: string[]): Command {
  let cmd = program;
  for (const name of path) cmd = cmd.commands.find((c) => c.name() === name)!;
  return cmd;
}

/** The format the command at `path` resolves for these arguments; its real action is replaced. */
async function formatFor(path: string[], args: string[]): Promise<OutputFormat> {
  const program = buildProgram();
  quiet(program, []);
  let seen: OutputFormat | undefined;
  find(program, path).action((...a: unknown[]) => {
    seen = outputFormat(a.at(-1) as Command);
  });
  await program.parseAsync(['node', 'segr', ...args]);
  assert.ok(seen, 'the action ran');
  return seen;
}

void test('--output is global: text by default, json before or after the subcommand', async () => {
  assert.equal(await formatFor(['train', 'status'], ['train', 'status', 'r1']), 'text');
  assert.equal(await formatFor(['train', 'status'], ['-o', 'json', 'train', 'status', 'r1']), 'json');
  assert.equal(await formatFor(['train', 'status'], ['train', 'status', 'r1', '--output', 'json']), 'json');
  assert.equal(await formatFor(['schedule', 'list'], ['schedule', 'list', '-o', 'json']), 'json');
  assert.equal(await formatFor(['check'], ['check', '--output=text']), 'text');
});

void test('the old boolean --json flags are aliases of --output json', async () => {
  assert.equal(await formatFor(['train', 'status'], ['train', 'status', 'r1', '--json']), 'json');
  assert.equal(await formatFor(['dev', 'status'], ['dev', 'status', '--json']), 'json');
  assert.equal(await formatFor(['search'], ['search', 'q', '--json']), 'json');
});

void test('eval --json <file> names a report file, not the output format; --report-json is its new name', async () => {
  const program = buildProgram();
  quiet(program, []);
  const seen: { format: OutputFormat; opts: Record<string, unknown> }[] = [];
  find(program, ['eval']).action((opts: Record<string, unknown>, cmd: Command) => {
    seen.push({ format: outputFormat(cmd), opts });
  });
  await program.parseAsync(['node', 'segr', 'eval', '--dataset', 'd', '--json', 'r.json']);
  assert.equal(seen[0]!.format, 'text');
  assert.equal(seen[0]!.opts.json, 'r.json');
  const help = find(program, ['eval']).helpInformation();
  assert.match(help, /--report-json <file>/);
  assert.match(help, /--json <file>\s+old spelling of --report-json/);
});

void test('--output yaml is refused by commander, naming the allowed formats', async () => {
  const program = buildProgram();
  const errors: string[] = [];
  quiet(program, errors);
  await assert.rejects(
    program.parseAsync(['node', 'segr', '--output', 'yaml', 'config']),
    (err: Error & { code?: string }) => {
      assert.equal(err.code, 'commander.invalidArgument');
      return true;
    },
  );
  assert.match(errors.join(''), /'yaml' is invalid\. Allowed choices are text, json/);
});

void test('emit: one JSON document in json, the command’s own text in text', () => {
  const program = buildProgram();
  quiet(program, []);
  const out: string[] = [];
  const write = (s: string) => void out.push(s);
  program.setOptionValue('output', 'json');
  emit(program, { a: 1 }, 'never', write);
  assert.deepEqual(JSON.parse(out.join('')), { a: 1 });
  out.length = 0;
  program.setOptionValue('output', 'text');
  emit(program, { a: 1 }, 'pause: x', write);
  assert.equal(out.join(''), 'pause: x\n');
});

const status: TrainingStatus = {
  runId: 'r1',
  phase: 'training',
  step: 2,
  steps: 5,
  paused: false,
  stopRequested: false,
  policy: { version: 2, model: 'policy' },
  groupsStarted: 0,
  groupsDone: 0,
  generation: 0,
  keptGroups: 0,
  recent: [],
} as unknown as TrainingStatus;

void test('train status: the json document parses and the text is the status block', () => {
  const doc = statusDocument(status, undefined, 'RUNNING');
  const parsed = JSON.parse(JSON.stringify(doc, null, 2)) as Record<string, unknown>;
  assert.deepEqual(parsed.execution, { status: 'RUNNING' });
  assert.equal(parsed.lastStep, null);
  assert.equal((parsed.status as { runId: string }).runId, 'r1');
  assert.match(formatStatus(status), /^run r1: step 2\/5 · training\n {2}policy v2 \(policy\)$/);
});

void test('schedule list: rows as JSON and as an aligned table', () => {
  const summaries = [
    {
      scheduleId: 'nightly',
      action: { type: 'startWorkflow', workflowType: 'evaluation' },
      state: { paused: false, note: 'n' },
      info: {
        nextActionTimes: [new Date('2030-01-02T03:00:00Z')],
        recentActions: [
          {
            scheduledAt: new Date('2030-01-01T03:00:00Z'),
            takenAt: new Date('2030-01-01T03:00:01Z'),
            action: {
              type: 'startWorkflow',
              workflow: { workflowId: 'nightly-wf', firstExecutionRunId: 'x' },
            },
          },
        ],
      },
    },
    { scheduleId: 'p', state: { paused: true }, info: { nextActionTimes: [], recentActions: [] } },
  ] as unknown as ScheduleSummary[];
  const rows = summaries.map(scheduleListRow);
  assert.deepEqual(JSON.parse(JSON.stringify({ schedules: rows })).schedules[0], {
    id: 'nightly',
    paused: false,
    note: 'n',
    workflowType: 'evaluation',
    next: '2030-01-02T03:00:00.000Z',
    lastAction: { at: '2030-01-01T03:00:01.000Z', workflowId: 'nightly-wf' },
  });
  assert.equal(rows[1]!.lastAction, null);
  const lines = formatScheduleList(rows).split('\n');
  assert.equal(lines.length, 3);
  assert.match(lines[0]!, /^ID {7}STATE {3}NEXT RUN {18}LAST ACTION$/);
  assert.match(
    lines[1]!,
    /^nightly {2}active {2}2030-01-02T03:00:00\.000Z {2}2030-01-01T03:00:01\.000Z nightly-wf$/,
  );
  assert.match(lines[2]!, /^p {8}paused {2}– {25}–$/);
  assert.equal(formatScheduleList([]), 'no schedules');
});
