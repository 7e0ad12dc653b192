// `segr eval-masks --pred DIR --gt DIR`: DAVIS J and F of a folder of predicted masks.
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { readMaskPng } from '../../activities/media/mask-png.js';
import { evaluateFrame } from '../../core/metrics/davis.js';
import { emptyMask } from '../../core/metrics/mask.js';
import { npMean } from '../../core/metrics/numpy.js';
import { positiveNumber } from '../option-parsers.js';
import { emit } from '../output.js';

export interface EvalMasksResult {
  frames: { name: string; J: number; F: number }[];
  J: number;
  F: number;
  JF: number;
}

/**
 * J and F of every ground-truth PNG in `gtDir` against the same-named file in `predDir` (a missing
 * prediction is an empty mask), as `eval_okvos.py` does for one query: means over all frames.
 */
export async function evalMaskFolders(
  predDir: string,
  gtDir: string,
  boundTh = 0.008,
): Promise<EvalMasksResult> {
  let names: string[];
  try {
    names = (await readdir(gtDir)).filter((n) => n.endsWith('png')).sort();
  } catch (e) {
    throw new Error(`--gt ${gtDir} cannot be listed (${e instanceof Error ? e.message : String(e)})`);
  }
  if (names.length === 0)
    throw new Error(`--gt ${gtDir} holds no .png masks; point it at a folder of ground-truth PNGs`);
  if (!existsSync(predDir)) throw new Error(`--pred ${predDir} does not exist`);
  const frames: EvalMasksResult['frames'] = [];
  for (const name of names) {
    const gt = await readMaskPng(join(gtDir, name));
    const predPath = join(predDir, name);
    const pred = existsSync(predPath) ? await readMaskPng(predPath) : emptyMask(gt.width, gt.height);
    if (pred.width !== gt.width || pred.height !== gt.height) {
      throw new Error(
        `${predPath} is ${pred.width}×${pred.height} but ${join(gtDir, name)} is ${gt.width}×${gt.height}; ` +
          'predictions must have the ground truth size',
      );
    }
    const s = evaluateFrame(pred, gt, boundTh);
    frames.push({ name, J: s.J, F: s.F });
  }
  const J = npMean(frames.map((f) => f.J));
  const F = npMean(frames.map((f) => f.F));
  return { frames, J, F, JF: (J + F) / 2 };
}

export function register(program: Command): void {
  program
    .command('eval-masks')
    .description(
      'DAVIS J (region) and F (boundary) of predicted mask PNGs against ground-truth PNGs with the same names; ' +
        'non-zero is foreground, a missing prediction counts as an empty mask. Prints JSON.',
    )
    .requiredOption('--pred <dir>', 'folder of predicted mask PNGs')
    .requiredOption('--gt <dir>', 'folder of ground-truth mask PNGs (every .png in it is evaluated)')
    .option(
      '--bound-th <x>',
      'boundary tolerance: a fraction of the image diagonal (< 1) or pixels (>= 1)',
      positiveNumber('--bound-th'),
      0.008,
    )
    .action(async (opts: { pred: string; gt: string; boundTh: number }, cmd: Command) => {
      const result = await evalMaskFolders(opts.pred, opts.gt, opts.boundTh);
      emit(cmd, result, JSON.stringify(result));
    });
}
