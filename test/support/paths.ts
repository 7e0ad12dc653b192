// Where tests find the checkout and the real public data in ../shared/data (never copied in).
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir)
      throw new Error('test/support/paths: cannot find the checkout root (no package.json)');
    dir = parent;
  }
  return dir;
}

/** The checkout root (the folder holding package.json). */
export const repoRoot = findRepoRoot();

/** The shared public data folder: `SEGFLOW_SHARED_DATA`, else `../shared/data` beside the checkout. */
export const sharedDataDir = resolve(
  process.env.SEGFLOW_SHARED_DATA ?? join(repoRoot, '..', 'shared', 'data'),
);

/** A path inside the shared data folder. */
export function sharedData(...parts: string[]): string {
  return join(sharedDataDir, ...parts);
}
