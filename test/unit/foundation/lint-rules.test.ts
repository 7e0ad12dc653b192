// The determinism fence is real: ESLint, with the project's own config, rejects Node built-ins and
// value imports of activities/ in workflows/ and core/, and floating promises anywhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ESLint } from 'eslint';
import { repoRoot } from '../../support/paths.js';

async function lintProbe(folder: string, code: string): Promise<string[]> {
  const file = join(repoRoot, folder, `__lint_probe_${process.pid}.ts`);
  writeFileSync(file, code);
  try {
    const eslint = new ESLint({ cwd: repoRoot });
    const [result] = await eslint.lintFiles([file]);
    return (result?.messages ?? []).map((m) => `${m.ruleId}: ${m.message}`);
  } finally {
    rmSync(file, { force: true });
  }
}

test('a Node built-in import in workflows/ is rejected', { timeout: 120_000 }, async () => {
  const messages = await lintProbe(
    'workflows',
    "import { readFileSync } from 'node:fs';\nexport const x = readFileSync;\n",
  );
  assert.ok(
    messages.some(
      (m) => m.startsWith('@typescript-eslint/no-restricted-imports') && /Node built-ins/.test(m),
    ),
    messages.join('\n'),
  );
  const bare = await lintProbe('workflows', "import fs from 'fs';\nexport const y = fs;\n");
  assert.ok(
    bare.some((m) => /Node built-ins/.test(m)),
    bare.join('\n'),
  );
});

test('core/ rejects Node built-ins and value imports of activities/', { timeout: 120_000 }, async () => {
  const messages = await lintProbe(
    'core',
    "import { createHash } from 'node:crypto';\nimport { ArtifactStore } from '../activities/storage/artifact-store.js';\nexport const z = [createHash, ArtifactStore];\n",
  );
  assert.ok(
    messages.some((m) => /Node built-ins/.test(m)),
    messages.join('\n'),
  );
  assert.ok(
    messages.some((m) => /activity \*types\*/.test(m)),
    messages.join('\n'),
  );
});

test(
  'workflows/ may import activity types, and floating promises are errors',
  { timeout: 120_000 },
  async () => {
    const typeOnly = await lintProbe(
      'workflows',
      "import type { StackCheckActivities } from '../activities/stack-check.js';\nexport type A = StackCheckActivities;\n",
    );
    assert.deepEqual(typeOnly, []);
    const floating = await lintProbe(
      'workflows',
      'export async function f(): Promise<void> {}\nexport function g(): void {\n  f();\n}\n',
    );
    assert.ok(
      floating.some((m) => m.startsWith('@typescript-eslint/no-floating-promises')),
      floating.join('\n'),
    );
  },
);
