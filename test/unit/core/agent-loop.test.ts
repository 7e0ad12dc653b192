// The agent loop itself (core/rollout/agent-loop.ts `runAgentLoop`), driven by scripted operations:
// each test writes the policy's generations and the tools' answers by hand and checks what a user of
// the rollout sees: why it stopped, the turns, the observations the policy was shown, and the answer.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ArtifactRef } from '../../../core/artifacts.js';
import {
  runAgentLoop,
  toPolicyMessages,
  type Generation,
  type RolloutOps,
  type RolloutProgress,
  type RolloutSample,
  type SearchObservation,
} from '../../../core/rollout/agent-loop.js';
import { DEFAULT_ROLLOUT_SETTINGS, type RolloutMessage } from '../../../core/rollout/turn-rules.js';
import type { SearchToolName } from '../../../core/protocol/tags.js';

const ref = (key: string): ArtifactRef => ({
  uri: `s3://segflow-test/${key}`,
  sha256: '0'.repeat(64),
  bytes: 1,
  contentType: 'image/jpeg',
});

const sample: RolloutSample = {
  id: 'okvos-0001',
  question: 'Segment the building that was the tallest in the world in 2010.',
  ability: 'one-hop',
  frames: [0, 4, 7].map((fid) => ({
    fid,
    policy: ref(`policy/${fid}.jpg`),
    original: ref(`original/${fid}.jpg`),
  })),
};

type Scripted = Pick<Generation, 'text'> & Partial<Generation>;

/** What the loop asked of its operations, recorded as it asked (messages copied: the loop appends to them). */
interface Calls {
  generate: { step: number; messages: RolloutMessage[]; contextTokens?: number }[];
  search: { tool: SearchToolName; query: string }[];
  keyframe: ArtifactRef[];
  progress: RolloutProgress[];
}

/**
 * Operations that play a script: generation i answers the i-th request (asking for one more than
 * scripted fails the test); a search answers from `results` by query; a keyframe returns a
 * "high-res" reference named after the original frame.
 */
function scripted(
  generations: Scripted[],
  results: Record<string, Partial<SearchObservation>> = {},
): { ops: RolloutOps; calls: Calls } {
  const calls: Calls = { generate: [], search: [], keyframe: [], progress: [] };
  let next = 0;
  const ops: RolloutOps = {
    generate(req) {
      calls.generate.push({ ...req, messages: req.messages.map((m) => ({ ...m })) });
      const g = generations[next++];
      if (g === undefined)
        throw new Error(`the loop asked for generation ${next - 1}; the script has ${generations.length}`);
      return Promise.resolve({
        finishReason: 'stop',
        promptTokens: 1000,
        completionTokens: 50,
        latencyMs: 10,
        hostId: 'policy-0',
        ...g,
      });
    },
    search(req) {
      calls.search.push(req);
      const r = results[req.query];
      if (r === undefined) throw new Error(`unscripted search ${JSON.stringify(req.query)}`);
      return Promise.resolve({ observation: '', images: [], backend: 'fixture', cached: false, ...r });
    },
    keyframe(frame) {
      calls.keyframe.push(frame);
      return Promise.resolve(ref(`highres/${frame.uri.split('/').pop()}`));
    },
    onProgress(p) {
      calls.progress.push(p);
    },
  };
  return { ops, calls };
}

const SEARCH =
  '<thinking>Which building?</thinking><search>{"name": "text_search", "query": "tallest building 2010"}</search>';
const KEYFRAME_7 = '<thinking>Frame 7 shows it best.</thinking><keyframe> 7 </keyframe>';
const ANSWER =
  '<thinking>The tower in the centre.</thinking><answer>{"bbox_2d": [100, 50, 400, 900], "point_2d": [250, 500]}</answer>';
const INFO = '<information>Burj Khalifa, Dubai: tallest building since 2010.</information>';

void test('search → keyframe → answer: three turns, both tools run, the answer is usable', async () => {
  const { ops, calls } = scripted(
    [{ text: SEARCH }, { text: KEYFRAME_7 }, { text: ANSWER, promptTokens: 1400, completionTokens: 30 }],
    { 'tallest building 2010': { observation: INFO, backend: 'searxng', cached: true } },
  );
  const r = await runAgentLoop(sample, DEFAULT_ROLLOUT_SETTINGS, ops);

  assert.equal(r.stopReason, 'model_chose_to_finish');
  assert.deepEqual(
    r.turns.map((t) => [t.step, t.action?.tool ?? null, t.action?.detail ?? null]),
    [
      [0, 'search', 'text_search: tallest building 2010'],
      [1, 'keyframe', '7'],
      [2, null, null],
    ],
  );
  // The tools were called with what the policy wrote: the search query, the ORIGINAL frame 7.
  assert.deepEqual(calls.search, [{ tool: 'text_search', query: 'tallest building 2010' }]);
  assert.deepEqual(calls.keyframe, [sample.frames[2]!.original]);
  assert.deepEqual(r.searches, [
    { tool: 'text_search', query: 'tallest building 2010', backend: 'searxng', cached: true },
  ]);

  // The conversation the policy saw: prompt (with the sampled frames), then assistant/tool turns.
  assert.deepEqual(
    r.messages.map((m) => m.role),
    ['system', 'user', 'assistant', 'user', 'assistant', 'user', 'assistant'],
  );
  assert.deepEqual(
    r.messages[1]!.images,
    sample.frames.map((f) => f.policy),
  );
  assert.match(
    r.messages[1]!.content,
    /frame 0 <image>\nframe 4 <image>\nframe 7 <image>\n\nSegment the building/,
  );
  assert.equal(r.messages[3]!.content, INFO);
  assert.equal(r.messages[3]!.images, undefined);
  assert.equal(r.messages[5]!.content, 'Here is the high-res version of your selected frame: <image>');
  assert.deepEqual(r.messages[5]!.images, [ref('highres/7.jpg')]);
  // Each generation saw everything before it, and nothing after.
  assert.deepEqual(
    calls.generate.map((g) => g.messages.length),
    [2, 4, 6],
  );
  assert.equal(calls.generate[2]!.messages[5]!.content, r.messages[5]!.content);

  // The reward reads generations and observations in order, prompt excluded.
  assert.equal(r.responseText, SEARCH + INFO + KEYFRAME_7 + r.messages[5]!.content + ANSWER);
  assert.equal(r.turns[0]!.observation?.cached, true);

  assert.equal(r.answer.status, 'ok');
  assert.deepEqual([r.answer.keyframe, r.answer.box, r.answer.point], [7, [100, 50, 400, 900], [250, 500]]);
  assert.deepEqual([r.promptTokens, r.completionTokens], [1000 + 1000 + 1400, 50 + 50 + 30]);

  // Progress, as the rollout's status query shows it.
  assert.deepEqual(
    calls.progress.map((p) => `${p.turn}:${p.step}`),
    ['0:think', '0:search', '1:think', '1:keyframe', '2:think', '2:answer'],
  );
  assert.equal(calls.progress[1]!.lastAction, 'text_search: tallest building 2010');
});

void test('a malformed search is not run: the tool error becomes the observation and the model may recover', async () => {
  const broken = '<thinking>search</thinking><search>{"name": "text_search", "query": </search>';
  const wrongTool = '<search>{"name": "video_search", "query": "burj"}</search>';
  const { ops, calls } = scripted(
    [{ text: broken }, { text: wrongTool }, { text: SEARCH }, { text: KEYFRAME_7 + ANSWER }],
    { 'tallest building 2010': { observation: INFO } },
  );
  const r = await runAgentLoop(sample, DEFAULT_ROLLOUT_SETTINGS, ops);

  // Only the well-formed search reached the search operation.
  assert.deepEqual(
    calls.search.map((s) => s.query),
    ['tallest building 2010'],
  );
  assert.deepEqual(
    r.searches.map((s) => s.query),
    ['tallest building 2010'],
  );
  assert.deepEqual(r.turns[0]!.action, { tool: 'search', detail: 'invalid' });
  assert.match(
    r.messages[3]!.content,
    /^Invalid JSON format in search query: Expecting value: line 1 column \d+/,
  );
  assert.equal(
    r.messages[5]!.content,
    "Invalid 'name' parameter. Expected one of ['text_search', 'image_search'], but got 'video_search'.",
  );
  // The policy was shown the error before its next turn, and went on to answer.
  assert.equal(calls.generate[1]!.messages.at(-1)!.content, r.messages[3]!.content);
  assert.equal(r.stopReason, 'model_chose_to_finish');
  assert.equal(r.turns.length, 4);
  assert.equal(r.answer.status, 'ok');
});

void test('an action no tool accepts gets an empty observation; a keyframe outside the sample is refused', async () => {
  const { ops, calls } = scripted([
    { text: '<keyframe> seven </keyframe>' },
    { text: '<keyframe> 12 </keyframe>' },
    { text: KEYFRAME_7 + ANSWER },
  ]);
  const r = await runAgentLoop(sample, DEFAULT_ROLLOUT_SETTINGS, ops);

  assert.deepEqual(r.turns[0]!.action, { tool: 'none', detail: 'No valid tool found for action' });
  assert.equal(r.messages[3]!.content, '');
  assert.deepEqual(r.turns[1]!.action, { tool: 'keyframe', detail: '12' });
  assert.equal(r.messages[5]!.content, 'Frame index not in [0, 4, 7].');
  assert.equal(r.messages[5]!.images, undefined);
  assert.deepEqual(calls.keyframe, [], 'no frame was fetched for an unusable selection');
  assert.equal(r.stopReason, 'model_chose_to_finish');
});

void test('max turns: maxTurns tool calls run, the action of the last generation does not', async () => {
  const settings = { ...DEFAULT_ROLLOUT_SETTINGS, maxTurns: 2 };
  const { ops, calls } = scripted([{ text: SEARCH }, { text: SEARCH }, { text: SEARCH }], {
    'tallest building 2010': { observation: INFO },
  });
  const r = await runAgentLoop(sample, settings, ops);

  assert.equal(r.stopReason, 'max_turns_reached');
  assert.equal(r.turns.length, 3, 'maxTurns + 1 generations');
  assert.equal(calls.search.length, 2);
  assert.equal(r.searches.length, 2);
  assert.equal(r.turns[2]!.action, undefined);
  assert.equal(r.turns[2]!.observation, undefined);
  assert.equal(r.messages.at(-1)!.role, 'assistant', 'no observation after the last generation');
  // Searching forever never chose a keyframe: the rollout ends normally with an unusable answer.
  assert.equal(r.answer.status, 'no_keyframe');
});

void test('observations are cut to maxObsLength: text keeps its end, text with images its start', async () => {
  const settings = { ...DEFAULT_ROLLOUT_SETTINGS, maxObsLength: 10, charsPerToken: 2 }; // 20 characters
  const longText = `<information>${'a'.repeat(40)}THE-LAST-TWENTY-CHAR</information>`;
  const withImage = 'Image result one: <image> and a long caption that goes on';
  const imageSearch = '<search>{"name": "image_search", "query": "burj khalifa photo"}</search>';
  const { ops } = scripted([{ text: SEARCH }, { text: imageSearch }, { text: ANSWER }], {
    'tallest building 2010': { observation: longText },
    'burj khalifa photo': { observation: withImage, images: [ref('search/1.jpg')] },
  });
  const r = await runAgentLoop(sample, settings, ops);

  assert.equal(r.messages[3]!.content, `${longText.slice(-20)}...(truncated)`);
  assert.equal(
    r.messages[5]!.content,
    `${withImage.slice(0, 18)}...(truncated)`,
    'the <image> placeholder is not cut in half',
  );
  assert.deepEqual(r.messages[5]!.images, [ref('search/1.jpg')]);
  // The reward reads what the policy was shown, not the full tool output.
  assert.ok(r.responseText.includes(`${longText.slice(-20)}...(truncated)`));
  assert.ok(!r.responseText.includes('a'.repeat(40)));
});

void test('the context budget: each generation is told the context so far, and a spent budget stops the loop', async () => {
  const { ops, calls } = scripted(
    [
      { text: KEYFRAME_7, promptTokens: 3000, completionTokens: 40 },
      { text: SEARCH, promptTokens: 3300, completionTokens: 60 },
      // The policy client sends no request once the context is spent and says so in finishReason.
      { text: '', finishReason: 'max_model_len_exceeded', promptTokens: 0, completionTokens: 0 },
    ],
    { 'tallest building 2010': { observation: 'x'.repeat(70) } },
  );
  const r = await runAgentLoop(sample, DEFAULT_ROLLOUT_SETTINGS, ops);

  // Turn 0 has no context yet; later turns get the server's last count plus an estimate of the
  // observation since: the keyframe text (60 characters / 3.5 → 18) + 196 per image; 70 / 3.5 → 20.
  assert.deepEqual(
    calls.generate.map((g) => g.contextTokens),
    [undefined, 3040 + 18 + 196, 3360 + 20],
  );
  assert.equal(r.stopReason, 'max_model_len_exceeded');
  assert.equal(r.turns.length, 3);
  assert.equal(r.answer.status, 'no_answer', 'a keyframe was chosen but no box was ever given');
});

void test('a generation cut at its token cap ends the rollout, even mid-action', async () => {
  const { ops, calls } = scripted([{ text: SEARCH, finishReason: 'length' }]);
  const r = await runAgentLoop(sample, DEFAULT_ROLLOUT_SETTINGS, ops);
  assert.equal(r.stopReason, 'max_response_length_reached');
  assert.equal(r.turns.length, 1);
  assert.deepEqual(calls.search, []);
});

void test('answer status: the first keyframe in the response counts, and an unusable answer is a status, not a failure', async () => {
  const run = async (...texts: string[]) =>
    (await runAgentLoop(sample, DEFAULT_ROLLOUT_SETTINGS, scripted(texts.map((text) => ({ text }))).ops))
      .answer;

  // A keyframe looked at earlier is the one the answer is read with (first match, as SAM2 prompting does).
  const first = await run('<keyframe> 4 </keyframe>', KEYFRAME_7 + ANSWER);
  assert.equal(first.status, 'ok');
  assert.equal(first.keyframe, 4);

  const notSampled = await run(
    '<keyframe> 5 </keyframe><answer>{"bbox_2d": [1, 2, 30, 40], "point_2d": [5, 6]}</answer>',
  );
  assert.equal(notSampled.status, 'keyframe_not_sampled');
  assert.match(notSampled.problems.join('; '), /keyframe 5 is not one of the sampled frames \[0, 4, 7\]/);

  const outOfRange = await run(
    KEYFRAME_7 + '<answer>{"bbox_2d": [100, 50, 1400, 900], "point_2d": [250, 500]}</answer>',
  );
  assert.equal(outOfRange.status, 'coordinates_out_of_range');
  assert.deepEqual(outOfRange.box, [100, 50, 1400, 900]);

  const degenerate = await run(
    KEYFRAME_7 + '<answer>{"bbox_2d": [400, 50, 100, 900], "point_2d": [250, 500]}</answer>',
  );
  assert.equal(degenerate.status, 'degenerate_box');

  assert.equal((await run('I cannot tell.')).status, 'no_keyframe');
});

void test('toPolicyMessages puts each image where its <image> placeholder stands', async () => {
  const { ops } = scripted([{ text: KEYFRAME_7 }, { text: ANSWER }]);
  const r = await runAgentLoop(sample, DEFAULT_ROLLOUT_SETTINGS, ops);
  const policy = toPolicyMessages(r.messages);

  assert.equal(policy[0]!.content, r.messages[0]!.content, 'a message without images stays a string');
  const prompt = policy[1]!.content;
  assert.ok(Array.isArray(prompt));
  assert.deepEqual(prompt.slice(0, 4), [
    { type: 'text', text: 'frame 0 ' },
    { type: 'image', image: sample.frames[0]!.policy },
    { type: 'text', text: '\nframe 4 ' },
    { type: 'image', image: sample.frames[1]!.policy },
  ]);
  assert.deepEqual(policy[3]!.content, [
    { type: 'text', text: 'Here is the high-res version of your selected frame: ' },
    { type: 'image', image: ref('highres/7.jpg') },
  ]);
});

void test('sampled token ids and log-probs stay on their assistant message for the trainer; a re-appended stop string drops them', async () => {
  const { ops } = scripted(
    [
      { text: SEARCH, tokenIds: [5, 6, 7], logprobs: [-0.5, -1.25, -2], stopReappended: true },
      { text: KEYFRAME_7, tokenIds: [8, 9], logprobs: [-0.75, -0.125] },
      { text: ANSWER, tokenIds: [10, 11, 12], logprobs: [-1] },
    ],
    { 'tallest building 2010': { observation: INFO } },
  );
  const r = await runAgentLoop(sample, DEFAULT_ROLLOUT_SETTINGS, ops);
  const assistant = r.messages.filter((m) => m.role === 'assistant');
  assert.equal(assistant.length, 3);
  // the server dropped `</search>` and the client put it back: the ids are not the whole text
  assert.equal(assistant[0]!.tokenIds, undefined);
  assert.deepEqual(assistant[1]!.tokenIds, [8, 9]);
  assert.deepEqual(assistant[1]!.logprobs, [-0.75, -0.125]);
  // log-probs that do not match the ids one for one are not kept
  assert.deepEqual(assistant[2]!.tokenIds, [10, 11, 12]);
  assert.equal(assistant[2]!.logprobs, undefined);
  // what the policy server is sent carries neither
  for (const m of toPolicyMessages(r.messages)) assert.deepEqual(Object.keys(m).sort(), ['content', 'role']);
});
