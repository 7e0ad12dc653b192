// Synthetic records for the size tests (test/integration/scale.test.ts), shaped and sized as the
// real ones: refs with real-length URIs and SHA-256s, summaries with searches, reward breakdowns
// with their reasons. Pure and deterministic: the stub workflows of the test bundle use them too.
import type { ArtifactRef } from '../../core/artifacts.js';
import type { RewardBreakdown } from '../../core/rewards/score.js';
import type { RolloutSummary } from '../../core/contracts/rollout.js';
import type { RolloutGroupResult } from '../../workflows/rollout-group.js';

/** Workflow ids the stubs of the test bundle hand to the real workflow of the same name. */
export const REAL_GROUP_PREFIX = 'scale-real-group';
export const REAL_SAMPLE_EVAL_PREFIX = 'scale-video-eval';

/** A hex string of `n` characters that depends on `seed` (a SHA-256's length, not its value). */
export function fakeHex(seed: string, n = 64): string {
  let h = 2166136261;
  let out = '';
  while (out.length < n) {
    for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 16777619) >>> 0;
    h = Math.imul(h ^ out.length, 16777619) >>> 0;
    out += h.toString(16).padStart(8, '0');
  }
  return out.slice(0, n);
}

export function fakeRef(key: string, contentType = 'application/json', bytes = 48_213): ArtifactRef {
  return { uri: `s3://segflow/${key}`, sha256: fakeHex(key), bytes, contentType };
}

/** A content-addressed ref, as ingest and dataset preparation make them. */
export function contentRef(namespace: string, seed: string, ext: string, contentType: string): ArtifactRef {
  const sha = fakeHex(seed);
  return { uri: `s3://segflow/${namespace}/sha256/${sha}.${ext}`, sha256: sha, bytes: 183_402, contentType };
}

/** The summary a rollout returns: an answer, two searches with real-length queries, its trajectory ref. */
export function syntheticSummary(
  trajectoryId: string,
  artifactPrefix: string,
  policyVersion = 0,
): RolloutSummary {
  return {
    trajectoryId,
    stopReason: 'model_chose_to_finish',
    answer: { status: 'ok', keyframe: 12, box: [212, 148, 604, 811], point: [401, 470], problems: [] },
    turns: 4,
    numSearch: 2,
    searches: [
      {
        tool: 'text_search',
        query: 'which driver won the 2025 Qatar Grand Prix and what colour was the winning car livery',
        backend: 'serper',
        cached: false,
      },
      {
        tool: 'image_search',
        query: 'McLaren MCL39 papaya livery 2025 side view',
        backend: 'serper',
        cached: true,
      },
    ],
    policyVersion,
    promptTokens: 5321,
    completionTokens: 812,
    trajectory: fakeRef(`${artifactPrefix}/trajectory.json`, 'application/json', 91_734),
  };
}

/** A reward breakdown as `rewardScore` returns it (reasons included). */
export function syntheticReward(total: number): RewardBreakdown {
  return {
    total,
    outcome: total * 0.8,
    process: total * 0.2,
    format: 1,
    igr: 0.61,
    tpr: 0.5,
    k: 2,
    searchSteps: 2,
    numSearch: 2,
    iou: 0.72,
    box: 0.5,
    point: 1,
    frame: 0.83,
    keyframe: '12',
    firstQuery: 'which driver won the 2025 Qatar Grand Prix and what colour was the winning car livery',
    stepMatch: null,
    hasSteps: true,
    reasons: [
      'R_iou 0.72: IoU of the answer box with frame 12 ground truth box [220, 151, 598, 806]',
      'R_box 0.5: box L1 distance 14.5 px is within 50 px but not within 10 px',
      'R_point 1: point (401, 470) lies inside the ground-truth mask of frame 12',
      'R_frame 0.83: max_conn_area of keyframe 12',
      'format 1: every turn is <thinking> + one action tag',
      'IGR 0.61: first text_search query vs reference steps, mean cosine similarity',
      'TPR 0.5: 1 of 2 reference steps matched by a search query',
    ],
  };
}

/**
 * A finished group of `n` trajectories; rewards vary inside the group when `signal` (DAPO keeps it)
 * and are all equal otherwise (DAPO drops it).
 */
export function syntheticGroupResult(
  groupId: string,
  artifactPrefix: string,
  sampleId: string,
  n: number,
  signal: boolean,
  policyVersion = 0,
): RolloutGroupResult {
  const rewards = Array.from({ length: n }, (_, i) => (signal ? (i % 2 === 0 ? 1.4 : 0.3) : 0.9));
  const mean = rewards.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(rewards.reduce((a, r) => a + (r - mean) ** 2, 0) / (n - 1)) : 0;
  return {
    groupId,
    sampleId,
    trajectories: rewards.map((r, i) => ({
      summary: syntheticSummary(`${groupId}/traj-${i}`, `${artifactPrefix}/traj/${i}`, policyVersion),
      reward: syntheticReward(r),
      advantage: std > 0 ? (r - mean) / std : 0,
    })),
    meanReward: mean,
    rewardStd: std,
  };
}

/** The frames a prepared record shows the policy: K sampled frames at original and policy size. */
export function syntheticFrames(sampleId: string, k = 6) {
  return Array.from({ length: k }, (_, i) => ({
    index: i * 17,
    fid: i * 17,
    original: contentRef('media/frames', `${sampleId}/orig/${i}`, 'jpg', 'image/jpeg'),
    policy: contentRef('media/frames', `${sampleId}/policy/${i}`, 'jpg', 'image/jpeg'),
  }));
}

/** A prepared sample record (`segflow.sample/1`) of a video question, as `segr dataset prepare` writes. */
export function syntheticRecord(sampleId: string) {
  const frames = syntheticFrames(sampleId);
  return {
    schema: 'segflow.sample/1' as const,
    id: sampleId,
    format: 'okvos',
    split: 'train',
    ability: 'one-hop',
    dataSource: 'Search_RVOS_one-hop',
    question:
      "Please find 'the car driven by the winner of the 2025 Qatar Grand Prix' in the provided video.",
    steps: ['Search for the winner of the 2025 Qatar Grand Prix', 'Find the livery of that team in 2025'],
    media: {
      kind: 'frames',
      frameSet: contentRef('media/frame-sets', `${sampleId}/set`, 'json', 'application/json'),
      frames: 102,
      width: 1280,
      height: 720,
    },
    width: 1280,
    height: 720,
    totalFrames: 102,
    sampledIndices: frames.map((f) => f.index),
    anchor: 34,
    frames,
    policySize: { width: 448, height: 256 },
    groundTruth: Object.fromEntries(
      frames.map((f) => [
        String(f.fid),
        { bbox_2d: [221, 150, 601, 808], point_2d: [402, 468], area: 0.171, max_conn_area: 0.83 },
      ]),
    ),
    masks: contentRef('mask-sequences', `${sampleId}/masks`, 'json', 'application/json'),
    ignore: null,
    origin: `okvos/train/${sampleId}`,
  };
}

/** A trajectory as `saveTrajectory` stores it (what the reward activities read: its response). */
export function syntheticTrajectory(trajectoryId: string, sampleId: string) {
  const responseText =
    '<thinking>The question needs the winner of the race; I should search.</thinking>\n' +
    '<search> {"name": "text_search", "query": "which driver won the 2025 Qatar Grand Prix and what colour was the winning car livery"} </search>\n' +
    '<information>Lando Norris won the 2025 Qatar Grand Prix driving the papaya McLaren MCL39.</information>\n' +
    '<thinking>The papaya car in frame 12 is the target.</thinking>\n<keyframe> 12 </keyframe>\n' +
    '<thinking>It is the orange car in the centre.</thinking>\n' +
    '<answer> {"bbox_2d": [212, 148, 604, 811], "point_2d": [401, 470]} </answer>';
  return { trajectoryId, sampleId, policyVersion: 0, messages: [], turns: [], responseText };
}

/** A stored frame list (FrameSet) of `n` frames, as ingest and frame extraction write it. */
export function syntheticFrameSet(n: number) {
  return {
    width: 1920,
    height: 1080,
    frames: Array.from({ length: n }, (_, fid) => ({
      fid,
      name: `${String(fid).padStart(5, '0')}.jpg`,
      ref: contentRef('media/frames', `video/orig/${fid}`, 'jpg', 'image/jpeg'),
    })),
  };
}

/** An evaluation summary as `evalAggregate` returns it, with its most failed samples listed (50). */
export function syntheticEvaluationSummary(evalId: string, samples: number) {
  const jf = { J: 0.55, F: 0.61, JF: 0.58, count: samples / 4 };
  return {
    schema: 'segflow.eval-summary/1' as const,
    evalId,
    dataset: {
      uri: 's3://segflow/datasets/indexes/sha256/okvos-valid.json',
      format: 'okvos',
      split: 'valid',
      samples,
    },
    policy: { model: 'policy', version: 12 },
    samples: {
      expected: samples,
      scored: samples - 60,
      video: samples,
      image: 0,
      errors: 31,
      failed: 60,
      failedSamples: Array.from({ length: 50 }, (_, i) => ({
        sampleId: `okvos-valid-${fakeHex(String(i), 10)}-${i}`,
        ability: 'one-hop',
        type: 'PolicyServerUnavailable',
        message:
          `policy server http://policy-7.gpu.internal:8000/v1 could not be reached after 19 attempts over 900 s: ECONNREFUSED (the trajectory ${i} was stored as failed and is evaluated again by a re-run with the same id)`.padEnd(
            400,
            '.',
          ),
      })),
    },
    vos: {
      perAbility: { 'in-video': jf, 'one-hop': jf, 'multi-hop': jf, complex: jf },
      overall: jf,
    },
    reasonSeg: null,
    search: {
      calls: 41_230,
      cached: 9_120,
      distinctQueries: 30_114,
      byTool: { text_search: 30_100, image_search: 11_130 },
      byBackend: { serper: 41_230 },
      perSample: 2.06,
      paidCalls: 32_110,
      paidByBackend: { serper: 32_110 },
      costUsd: 32.11,
    },
    stopReasons: { model_chose_to_finish: 18_100, max_turns_reached: 1_700, context_budget_exhausted: 200 },
    answerStatus: { ok: 18_900, no_answer: 700, bad_keyframe: 400 },
    reward: null,
    tokens: { prompt: 106_000_000, completion: 16_000_000, completionPerSample: 800 },
  };
}
