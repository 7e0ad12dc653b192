/**
 * What a rollout returns to its parent (`rolloutGroup`, `segmentQuery`, `evaluateSample`) and what
 * evaluation stores of it. The full trajectory (messages, turns) stays in S3 behind `trajectory`.
 */
import { z } from 'zod';
import { artifactRefSchema } from '../artifacts.js';
import { AnswerStatuses, StopReasons, type CheckedAnswer, type StopReason } from '../rollout/turn-rules.js';

/** One search the policy made, as the trajectory and the evaluation record it. */
export const searchRecordSchema = z.strictObject({
  tool: z.string(),
  query: z.string(),
  backend: z.string(),
  cached: z.boolean(),
});
export type SearchRecord = z.infer<typeof searchRecordSchema>;

const stopReasons = Object.values(StopReasons) as [string, ...string[]];
export const stopReasonSchema = z.enum(stopReasons);

export const answerStatusSchema = z.enum(AnswerStatuses);

const box = z.tuple([z.number(), z.number(), z.number(), z.number()]).readonly();
const point = z.tuple([z.number(), z.number()]).readonly();

/** The final answer after checking: a usable prompt (`ok`), or why there is none. */
export const checkedAnswerSchema = z.strictObject({
  status: answerStatusSchema,
  keyframe: z.number().nullable(),
  box: box.nullable(),
  point: point.nullable(),
  problems: z.array(z.string()),
});

export const rolloutSummarySchema = z.strictObject({
  trajectoryId: z.string(),
  stopReason: stopReasonSchema,
  answer: checkedAnswerSchema,
  turns: z.number().int().min(0),
  numSearch: z.number().int().min(0),
  /** Every search the policy made, in order. */
  searches: z.array(searchRecordSchema),
  policyVersion: z.number().int().min(0),
  promptTokens: z.number().min(0),
  completionTokens: z.number().min(0),
  trajectory: artifactRefSchema,
});

/** A rollout's summary; stop reason and answer typed as the agent loop produces them. */
export type RolloutSummary = Omit<z.infer<typeof rolloutSummarySchema>, 'stopReason' | 'answer'> & {
  stopReason: StopReason;
  answer: CheckedAnswer;
};
