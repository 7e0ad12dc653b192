// infra/grafana/segflow.json charts every series segflow records (activities/runtime/metrics.ts,
// workflows/metrics.ts, trainer/segflow_trainer/telemetry.py) and the SDK's schedule-to-start latency.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ActivityMetrics } from '../../../activities/runtime/metrics.js';
import { WorkflowMetrics } from '../../../workflows/metrics.js';
import { repoRoot } from '../../support/paths.js';

const dashboard = JSON.parse(readFileSync(join(repoRoot, 'infra/grafana/segflow.json'), 'utf8')) as {
  panels: { type: string; targets?: { expr: string }[] }[];
};
const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)).join('\n');

test('the Grafana dashboard charts every segflow series and the SDK schedule-to-start latency', () => {
  const trainer = [
    ...readFileSync(join(repoRoot, 'trainer/segflow_trainer/telemetry.py'), 'utf8').matchAll(
      /"(segflow_trainer_\w+)"/g,
    ),
  ].map((m) => m[1]!);
  assert.ok(trainer.length >= 5, 'the trainer records its update metrics');
  const names = [
    ...Object.values(ActivityMetrics),
    ...Object.values(WorkflowMetrics),
    ...trainer.filter((n) => n !== 'segflow_trainer_updates'),
    'temporal_activity_schedule_to_start_latency',
    'temporal_workflow_task_schedule_to_start_latency',
  ];
  const missing = names.filter((n) => !new RegExp(`\\b${n}(_bucket)?\\b`).test(exprs));
  assert.deepEqual(missing, [], `series the dashboard does not chart: ${missing.join(', ')}`);
});
