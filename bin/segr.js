#!/usr/bin/env node
// The `segr` bin: runs the compiled CLI from dist/ (built by `npm run build`, `make test` or `make demo`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'; // the SDK version is pinned
const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  console.error(
    'segr: dist/ is missing. Run `make build` (or `npm ci && npm run build`) in the checkout first.',
  );
  process.exit(2);
}
const { main, formatCliError } = await import(entry.href);
try {
  await main(process.argv);
} catch (err) {
  // A workflow that did not complete prints its cause chain and Web UI link, not just "failed".
  console.error(`segr: ${formatCliError(err)}`);
  process.exitCode = process.exitCode || 1;
}
