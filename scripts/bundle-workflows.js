#!/usr/bin/env node
// Prebundles dist/workflows for workers (faster start, the same code in every worker): once plain,
// once with the OpenTelemetry workflow interceptors (workflow interceptor modules are fixed at bundle
// time; workers/telemetry.ts picks the traced bundle when tracing is configured; the interceptors are
// workflows/tracing-interceptors.ts).
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode } from '@temporalio/worker';

const workflowsPath = fileURLToPath(new URL('../dist/workflows/index.js', import.meta.url));
const logger = { log() {}, trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error };
const bundles = {
  'workflow-bundle.js': [],
  'workflow-bundle-traced.js': [
    fileURLToPath(new URL('../dist/workflows/tracing-interceptors.js', import.meta.url)),
  ],
};
for (const [file, workflowInterceptorModules] of Object.entries(bundles)) {
  const out = fileURLToPath(new URL(`../dist/${file}`, import.meta.url));
  const { code } = await bundleWorkflowCode({ workflowsPath, workflowInterceptorModules, logger });
  await writeFile(out, code);
  console.log(`bundled workflows -> ${out} (${(code.length / 1024).toFixed(0)} KiB)`);
}
