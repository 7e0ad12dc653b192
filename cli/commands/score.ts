// `segr score <file.jsonl>`: recompute the Seg-ReSearch reward terms of logged step records.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { z } from 'zod';
import { stripSpecialTokens } from '../../core/protocol/tags.js';
import { pyJsonLoads } from '../../core/pycompat/pyjson.js';
import { REWARD_PRESETS, rewardSettings, type RewardPresetName } from '../../core/rewards/settings.js';
import { scoreTrajectory } from '../../core/rewards/score.js';

/** The fields of a Seg-ReSearch step record (`verl_step_records/*.jsonl`) that scoring reads. */
const StepRecord = z.object({
  output: z.string({ error: 'field "output" (the decoded response) must be a string' }),
  gts: z.string({ error: 'field "gts" (the ground-truth JSON string) must be a string' }),
  steps: z.array(z.string()).optional(),
});

/** One output line: the reward terms of one record. */
export interface ScoreLine {
  format: number;
  tpr: number;
  /**
   * IGR needs the sentence-embedding model (a SimilarityProvider, configured elsewhere); `score`
   * has none, so it is always null here, and so are `process` and `total` for search samples.
   */
  igr: null;
  iou: number;
  box: number;
  point: number;
  frame: number;
  outcome: number;
  numSearch: number;
  keyframe: string | null;
  /** P and R where they do not need IGR: only for records that carry an empty `steps` list. */
  process: number | null;
  total: number | null;
}

/** Score one parsed record line. Throws a message naming the problem when the line is unusable. */
export function scoreRecordLine(
  line: string,
  preset: RewardPresetName,
  keyframe: 'first' | 'last',
): ScoreLine {
  // Records are written by Python's json, which may contain NaN / Infinity: parse with its rules.
  const parsed = pyJsonLoads(line);
  if (!parsed.ok) throw new Error(`not JSON (${parsed.error.message})`);
  const rec = StepRecord.safeParse(parsed.value);
  if (!rec.success) throw new Error(rec.error.issues.map((i) => i.message).join('; '));
  const settings = rewardSettings(preset, { keyframeMatch: keyframe });
  const r = scoreTrajectory(
    {
      // The reward decodes with skip_special_tokens=True; logged outputs keep <|im_end|> etc.
      response: stripSpecialTokens(rec.data.output),
      groundTruth: rec.data.gts,
      steps: rec.data.steps ?? null,
    },
    settings,
  );
  const known = rec.data.steps !== undefined && rec.data.steps.length === 0;
  return {
    format: r.format,
    tpr: r.tpr,
    igr: null,
    iou: r.iou,
    box: r.box,
    point: r.point,
    frame: r.frame,
    outcome: r.outcome,
    numSearch: r.numSearch,
    keyframe: r.keyframe,
    process: known ? r.process : null,
    total: known ? r.total : null,
  };
}

export function register(program: Command): void {
  program
    .command('score')
    .description(
      'recompute the reward terms (format, TPR, R_iou, R_box, R_point, R_frame) of Seg-ReSearch step records; ' +
        'one JSON line per record. IGR needs the embedding model and is reported as null.',
    )
    .argument(
      '<file>',
      'JSONL step records with fields "output" (decoded response) and "gts" (ground-truth JSON string)',
    )
    .option('--preset <name>', `reward preset: ${Object.keys(REWARD_PRESETS).join(', ')}`, 'hierarchical')
    .option(
      '--keyframe <which>',
      'which <keyframe> the outcome terms use: first (training) or last (validation)',
      'first',
    )
    .action(async (file: string, opts: { preset: string; keyframe: string }) => {
      if (!(opts.preset in REWARD_PRESETS)) {
        throw new Error(`--preset ${opts.preset} is not one of ${Object.keys(REWARD_PRESETS).join(', ')}`);
      }
      if (opts.keyframe !== 'first' && opts.keyframe !== 'last') {
        throw new Error(`--keyframe ${opts.keyframe} must be "first" or "last"`);
      }
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (e) {
        throw new Error(`cannot read ${file}: ${e instanceof Error ? e.message : String(e)}`);
      }
      const lines = text.split('\n');
      // `segr score … | head` closes the pipe early; that is not an error.
      process.stdout.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'EPIPE') process.exit(0);
        throw e;
      });
      let bad = 0;
      lines.forEach((line, i) => {
        if (line.trim() === '') return;
        try {
          const out = scoreRecordLine(
            line,
            opts.preset as RewardPresetName,
            opts.keyframe as 'first' | 'last',
          );
          process.stdout.write(`${JSON.stringify(out)}\n`);
        } catch (e) {
          bad++;
          console.error(
            `segr score: ${file} line ${i + 1}: ${e instanceof Error ? e.message : String(e)}; skipped`,
          );
        }
      });
      if (bad > 0) {
        console.error(`segr score: ${bad} line(s) of ${file} could not be scored; fix or remove them`);
        process.exitCode = 1;
      }
    });
}
