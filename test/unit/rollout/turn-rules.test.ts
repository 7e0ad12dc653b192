import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  checkAnswer,
  classifyGeneration,
  DEFAULT_ROLLOUT_SETTINGS as S,
  truncateObservation,
} from '../../../core/rollout/turn-rules.js';

test('a generation ending on an action stop string is an action until the last step', () => {
  const search = '<thinking>x</thinking><search>{"name":"text_search","query":"q"}</search>';
  assert.deepEqual(classifyGeneration(search, 'stop', 0, S), { kind: 'action', stop: '</search>' });
  assert.deepEqual(classifyGeneration('<keyframe> 4 </keyframe>', 'stop', 5, S), {
    kind: 'action',
    stop: '</keyframe>',
  });
  // The reference does not execute an action on the last step.
  assert.deepEqual(classifyGeneration(search, 'stop', 6, S), { kind: 'stop', reason: 'max_turns_reached' });
  assert.deepEqual(classifyGeneration('<answer>{}</answer>', 'stop', 2, S), {
    kind: 'stop',
    reason: 'model_chose_to_finish',
  });
  assert.deepEqual(classifyGeneration('<thinking>long', 'length', 1, S), {
    kind: 'stop',
    reason: 'max_response_length_reached',
  });
});

test('observation truncation keeps the last text, or the first part with images without cutting a placeholder', () => {
  const s = { ...S, maxObsLength: 4, charsPerToken: 2.5 }; // 10 characters
  assert.equal(truncateObservation('0123456789abc', false, s), '3456789abc...(truncated)');
  assert.equal(truncateObservation('abcd <image> tail', true, s), 'abcd ...(truncated)');
  assert.equal(truncateObservation('short', true, s), 'short');
});

test('checkAnswer: a good answer, and every malformed kind as a status with a readable reason', () => {
  const frames = [0, 4, 7, 11, 15, 19];
  const ok = checkAnswer(
    '<thinking>a</thinking><keyframe> 7 </keyframe>…<thinking>b</thinking><answer>{"bbox_2d":[10,20,300,400],"point_2d":[100,200]}</answer>',
    frames,
  );
  assert.equal(ok.status, 'ok');
  assert.deepEqual([ok.keyframe, ok.box, ok.point], [7, [10, 20, 300, 400], [100, 200]]);

  assert.equal(checkAnswer('no tags at all', frames).status, 'no_keyframe');
  const notSampled = checkAnswer(
    '<keyframe> 12 </keyframe><answer>{"bbox_2d":[1,2,3,4],"point_2d":[2,3]}</answer>',
    frames,
  );
  assert.equal(notSampled.status, 'keyframe_not_sampled');
  assert.match(
    notSampled.problems.join(' '),
    /keyframe 12 is not one of the sampled frames \[0, 4, 7, 11, 15, 19\]/,
  );
  assert.equal(
    checkAnswer('<keyframe> 4 </keyframe><answer>{"bbox_2d":[1,2,3</answer>', frames).status,
    'no_answer',
  );
  assert.equal(
    checkAnswer('<keyframe> 4 </keyframe><answer>{"bbox_2d":[1,2,3000,4],"point_2d":[2,3]}</answer>', frames)
      .status,
    'coordinates_out_of_range',
  );
  assert.equal(
    checkAnswer('<keyframe> 4 </keyframe><answer>{"bbox_2d":[50,2,10,40],"point_2d":[2,3]}</answer>', frames)
      .status,
    'degenerate_box',
  );
});

test('property: any text gives a well-formed answer check and generation outcome, never an exception', () => {
  fc.assert(
    fc.property(
      fc.string({ maxLength: 400 }),
      fc.constantFrom('stop', 'length', 'abort', ''),
      fc.nat(8),
      (text, fr, step) => {
        const a = checkAnswer(text, [0, 1, 2]);
        assert.ok(
          [
            'ok',
            'no_keyframe',
            'no_answer',
            'keyframe_not_sampled',
            'coordinates_out_of_range',
            'degenerate_box',
          ].includes(a.status),
        );
        const g = classifyGeneration(text, fr, step, S);
        assert.ok(g.kind === 'action' || g.kind === 'stop');
      },
    ),
    { numRuns: 500 },
  );
});
