#!/usr/bin/env node
// Records a finished workflow's history into test/histories/<name>.json for the replay tests.
//   node scripts/record-history.js <workflowId> <name>
import { writeFile } from 'node:fs/promises';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { loadConfig } from '../dist/activities/runtime/config-loader.js';
import { connectClient } from '../dist/workers/temporal-connection.js';

const [workflowId, name] = process.argv.slice(2);
if (!workflowId || !name) {
  console.error('usage: node scripts/record-history.js <workflowId> <name>');
  process.exit(2);
}
const client = await connectClient(loadConfig().config);
const history = await client.workflow.getHandle(workflowId).fetchHistory();
const out = new URL(`../test/histories/${name}.json`, import.meta.url);
// The workflow id goes beside the history: replay needs it (child ids derive from it).
await writeFile(out, JSON.stringify({ workflowId, history: JSON.parse(historyToJSON(history)) }, null, 1));
console.log(`wrote ${out.pathname} (${history.events?.length ?? 0} events)`);
await client.connection.close();
