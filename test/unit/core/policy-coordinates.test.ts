// Qwen2.5-VL answers in absolute pixels of its 448×448 resized frame; every consumer (the rollout's
// answer check, the segment prompt mapping, segmentQuery's grounding) must read them in that frame.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { promptToPixels } from '../../../activities/segment/prompts.js';
import { policyProtocolFrom } from '../../../cli/policy-protocol.js';
import { configSchema } from '../../../core/config/schema.js';
import { answerExtent, answerPrompt, boxToPixels } from '../../../core/protocol/coordinates.js';
import { sam2PromptPlan } from '../../../core/protocol/sam2-prompt.js';
import { checkAnswer } from '../../../core/rollout/turn-rules.js';

const QWEN25 = { kind: 'qwen25vl', resizedWidth: 448, resizedHeight: 448 } as const;
const frame = { width: 1280, height: 720 };
const answer = (box: number[], point: number[], keyframe = 4) =>
  `<keyframe> ${keyframe} </keyframe><answer> {"bbox_2d": [${box.join(', ')}], "point_2d": [${point.join(', ')}]} </answer>`;

test('policy.coordinates "pixels" selects the 448² Qwen2.5-VL frame; the default stays 0–1000', () => {
  const pixels = configSchema.parse({ policy: { coordinates: 'pixels' } }).policy;
  assert.deepEqual(policyProtocolFrom(pixels), { coordinates: QWEN25 });
  assert.deepEqual(policyProtocolFrom(configSchema.parse({}).policy), {});
});

test('a Qwen2.5-VL pixel answer maps to the right pixels of the original frame', () => {
  // The target covers x 320..960, y 180..540 of the 1280×720 frame: in the 448² frame that is
  // x 112..336, y 112..336; the point (640, 360) is (224, 224).
  const prompt = answerPrompt({ box: [112, 112, 336, 336], point: [224, 224] }, QWEN25);
  assert.deepEqual(prompt, {
    space: 'resized',
    resized: [448, 448],
    box: [112, 112, 336, 336],
    point: [224, 224],
  });
  const px = promptToPixels(
    answerPrompt({ box: [112, 112, 336, 336], point: [224, 224] }, QWEN25),
    frame,
    'frame',
  );
  assert.deepEqual(px.box, [320, 180, 960, 540]);
  assert.deepEqual(px.point, [640, 360]);
  // Read as 0–1000 (the old behaviour) the same numbers would land at x 143..430: wrong object.
  const wrong = promptToPixels(answerPrompt({ box: [112, 112, 336, 336], point: null }), frame, 'frame');
  assert.notDeepEqual(wrong.box, px.box);
  assert.deepEqual(boxToPixels([112, 112, 336, 336], frame, QWEN25), [320, 180, 960, 540]);
});

test('checkAnswer reads coordinates in the policy frame: 448 pixels for Qwen2.5-VL', () => {
  const ext = answerExtent(QWEN25);
  assert.deepEqual(ext, { x: 448, y: 448 });
  assert.equal(checkAnswer(answer([112, 112, 336, 336], [224, 224]), [0, 4], ext).status, 'ok');
  // 600 is inside 0–1000 but outside the 448-pixel frame.
  const out = checkAnswer(answer([112, 112, 600, 336], [224, 224]), [0, 4], ext);
  assert.equal(out.status, 'coordinates_out_of_range');
  assert.match(out.problems.at(-1)!, /\[0, 448\]/);
  assert.equal(checkAnswer(answer([112, 112, 600, 336], [224, 224]), [0, 4]).status, 'ok');
  // A resized prompt outside its frame is refused with the frame named, unless bounds are "pass".
  assert.throws(
    () => promptToPixels({ space: 'resized', resized: [448, 448], box: [0, 0, 500, 10] }, frame, 'kf'),
    /448×448 resized policy frame/,
  );
});

test('the reference SAM2 rule: near-miss answers are prompted, unchecked; empty boxes and zero points are not', () => {
  const near = checkAnswer(answer([100, 200, 1010, 700], [0, 0], 9), [0, 4]);
  assert.equal(near.status, 'keyframe_not_sampled');
  assert.equal(sam2PromptPlan(near, 'usable'), null);
  assert.deepEqual(sam2PromptPlan(near, 'reference'), {
    keyframe: 9,
    box: [100, 200, 1010, 700],
    point: null,
    unchecked: true,
  });
  const outOfRange = checkAnswer(answer([100, 200, 1010, 700], [500, 500]), [0, 4]);
  assert.equal(outOfRange.status, 'coordinates_out_of_range');
  assert.deepEqual(sam2PromptPlan(outOfRange, 'reference')?.point, [500, 500]);
  const noBox = checkAnswer(answer([0, 0, 0, 0], [0, 0]), [0, 4]);
  assert.equal(sam2PromptPlan(noBox, 'reference'), null);
  const pointOnly = checkAnswer(answer([0, 0, 0, 0], [300, 300]), [0, 4]);
  assert.deepEqual(sam2PromptPlan(pointOnly, 'reference'), {
    keyframe: 4,
    box: null,
    point: [300, 300],
    unchecked: true,
  });
  const missingBox = checkAnswer('<keyframe> 4 </keyframe><answer> {"point_2d": [1, 2]} </answer>', [0, 4]);
  assert.equal(sam2PromptPlan(missingBox, 'reference'), null);
  // Unchecked coordinates reach SAM2 as they are (x 1010 → 1010·W/1000).
  const px = promptToPixels(
    { ...answerPrompt({ box: [100, 200, 1010, 700], point: null }), bounds: 'pass' },
    frame,
    'kf',
  );
  assert.ok(Math.abs(px.box![2] - 1292.8) < 1e-9);
});
