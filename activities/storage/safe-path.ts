/**
 * Local paths built from input (a name an S3 listing or a search server returns, an id): the same
 * segment rules as S3 keys (core/contracts/safe-key.ts), then a check that the resolved path is
 * still inside `dir`, so neither `..` nor an absolute part leaves it. Symlinks are not resolved:
 * the folders these paths go under are the process's own.
 */
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { keyProblem } from '../../core/contracts/safe-key.js';
import { BadInputError } from '../errors.js';

/**
 * `dir/part/part…` for parts that came from input; each part may hold several `/`-separated
 * segments. Throws a BadInputError naming `what` when a part is absolute or has an unsafe segment.
 */
export function pathUnder(dir: string, parts: string | readonly string[], what = 'file name'): string {
  const list = typeof parts === 'string' ? [parts] : parts;
  for (const p of list) {
    const problem = isAbsolute(p) ? 'it is an absolute path' : keyProblem(p);
    if (problem) {
      throw new BadInputError(
        `unsafe ${what} ${JSON.stringify(p)}: ${problem}; it must be a relative path of plain segments ` +
          `inside ${dir}`,
        { name: p, dir },
      );
    }
  }
  const root = resolve(dir);
  const path = resolve(root, ...list);
  const rel = relative(root, path);
  if (rel === '' || rel.startsWith(`..${sep}`) || rel === '..' || isAbsolute(rel)) {
    throw new BadInputError(`unsafe ${what} ${JSON.stringify(list.join('/'))}: it leaves ${dir}`, {
      name: list.join('/'),
      dir,
    });
  }
  return path;
}
