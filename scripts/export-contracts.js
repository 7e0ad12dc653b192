#!/usr/bin/env node
// Writes the contracts the Python trainer validates against (core/contracts/json-schema.ts) to
// trainer/segflow_trainer/schemas/. Run by `npm run build` after tsc; rewrites a file only when its
// content changed, so a fresh clone's build leaves the work tree clean.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TRAINER_SCHEMA_DIR, trainerContractFiles } from '../dist/core/contracts/json-schema.js';

const root = new URL('..', import.meta.url).pathname;
const dir = join(root, TRAINER_SCHEMA_DIR);
await mkdir(dir, { recursive: true });
let changed = 0;
for (const [name, text] of Object.entries(trainerContractFiles())) {
  const path = join(dir, name);
  const old = await readFile(path, 'utf8').catch(() => null);
  if (old === text) continue;
  await writeFile(path, text);
  changed += 1;
  console.log(`export-contracts: wrote ${join(TRAINER_SCHEMA_DIR, name)}`);
}
if (changed === 0) console.log(`export-contracts: ${TRAINER_SCHEMA_DIR} is up to date`);
