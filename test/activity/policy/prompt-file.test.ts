// The prompt file (`policy.promptFile`, SEGFLOW_PROMPT_FILE, `--prompt-file`): read and validated by
// the CLI's code, carried as the rollout's protocol, and sent by the real policy activity to an
// OpenAI-compatible server, which must receive the file's text byte for byte as the system message.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createPolicyActivities } from '../../../activities/policy/activities.js';
import { loadConfig } from '../../../activities/runtime/config-loader.js';
import { policyProtocolFrom, readPromptFile } from '../../../cli/policy-protocol.js';
import type { PolicyProtocol } from '../../../core/contracts/protocol.js';
import { SEARCH_SYSTEM_PROMPT } from '../../../core/protocol/prompts.js';
import { runAgentLoop, toPolicyMessages, type RolloutSample } from '../../../core/rollout/agent-loop.js';
import { DEFAULT_ROLLOUT_SETTINGS } from '../../../core/rollout/turn-rules.js';
import {
  startFakePolicyServer,
  type FakePolicyServer,
  type WireMessage,
} from '../../servers/openai-server.js';
import { activityEnvironment } from '../../support/activity-env.js';
import { testStore } from '../../support/stack.js';

const tmp = mkdtempSync(join(tmpdir(), 'segflow-prompt-file-'));
const store = testStore();
let server: FakePolicyServer;
/** The system message of every request the server received. */
const systems: string[] = [];

function textOf(m: WireMessage | undefined): string {
  if (!m) return '';
  return typeof m.content === 'string' ? m.content : m.content.map((p) => p.text ?? '').join('');
}

// The reference's search prompt carries the tool JSON inside; quotes, braces, unicode and blank
// lines must survive YAML, the workflow input and the wire unchanged.
const SEARCH_TEXT = [
  'Your role is a video target identification assistant capable of web search.',
  '',
  '# Tools',
  '<tools>',
  '{"name": "text_search", "description": " Search for textual information from the internet.", "parameters": {"query": {"type": "string", "description": "Search keywords or phrases"}}}',
  '{"name": "image_search", "description": " Search for images from the internet.", "parameters": {"query": {"type": "string", "description": "Search keywords or phrases"}}}',
  '</tools>',
  '',
  "# **IMPORTANT NOTE** — don't search for what the frames show: «ça va».",
  '',
].join('\n');
const NON_SEARCH_TEXT = 'You are a two-step video reasoning assistant.\n  (indented line kept)\n';

before(async () => {
  server = await startFakePolicyServer({
    flavor: 'vllm',
    script: (messages) => {
      systems.push(textOf(messages[0]));
      return '<thinking>done</thinking>\n<answer> {"bbox_2d": [10, 20, 300, 400], "point_2d": [100, 200]} </answer>';
    },
  });
});
after(async () => {
  await server.close();
  store.client.destroy();
});

function sample(ability: RolloutSample['ability']): RolloutSample {
  return {
    id: `s-${ability}`,
    question: "Please find 'the red car' in the provided video.",
    ability,
    frames: [],
  };
}

/** One rollout through the real policy activity; returns the system message the server received. */
async function rolloutSystemMessage(
  ability: RolloutSample['ability'],
  env: Record<string, string>,
): Promise<string> {
  const { config } = loadConfig({
    env,
    file: '/dev/null',
    overrides: { 'policy.baseUrl': `${server.url}/v1` },
  });
  const protocol: PolicyProtocol = policyProtocolFrom(config.policy);
  const acts = createPolicyActivities({ config, store, heartbeatMs: 50 });
  const activity = activityEnvironment();
  const before = systems.length;
  const result = await runAgentLoop(
    sample(ability),
    DEFAULT_ROLLOUT_SETTINGS,
    {
      async generate({ messages }) {
        const turn = (await activity.run(acts.policyGenerate, {
          messages: toPolicyMessages(messages),
        })) as Awaited<ReturnType<typeof acts.policyGenerate>>;
        return { ...turn, hostId: 'local', latencyMs: 0 };
      },
      search: () => Promise.reject(new Error('no search expected')),
      keyframe: () => Promise.reject(new Error('no keyframe expected')),
    },
    protocol,
  );
  assert.equal(result.turns.length, 1);
  assert.equal(systems.length, before + 1);
  // The trajectory (what the trainer trains on) holds the same text.
  assert.equal(result.messages[0]!.content, systems.at(-1));
  return systems.at(-1)!;
}

test('the prompt file reaches the policy server verbatim: search and in-video prompts', async () => {
  const file = join(tmp, 'prompts.yaml');
  writeFileSync(
    file,
    `# the reference wording\nsearch: ${JSON.stringify(SEARCH_TEXT)}\nnonSearch: |\n  You are a two-step video reasoning assistant.\n    (indented line kept)\n`,
  );
  assert.equal(await rolloutSystemMessage('one-hop', { SEGFLOW_PROMPT_FILE: file }), SEARCH_TEXT);
  assert.equal(await rolloutSystemMessage('in-video', { SEGFLOW_PROMPT_FILE: file }), NON_SEARCH_TEXT);
});

test('without a prompt file the shipped paraphrase is sent; a JSON file works the same', async () => {
  assert.equal(await rolloutSystemMessage('relational', {}), SEARCH_SYSTEM_PROMPT);
  const file = join(tmp, 'search-only.json');
  writeFileSync(file, JSON.stringify({ search: SEARCH_TEXT }));
  assert.equal(await rolloutSystemMessage('multi-hop', { SEGFLOW_PROMPT_FILE: file }), SEARCH_TEXT);
  // A key left out keeps the paraphrase for that prompt.
  assert.match(await rolloutSystemMessage('in-video', { SEGFLOW_PROMPT_FILE: file }), /two steps/);
});

test('a bad prompt file is refused naming the file and what is wrong', () => {
  const typo = join(tmp, 'typo.yaml');
  writeFileSync(typo, 'serach: "text"\n');
  assert.throws(
    () => readPromptFile(typo),
    (err: Error) => {
      assert.match(err.message, /typo\.yaml/);
      assert.match(err.message, /serach/);
      assert.match(err.message, /expected \{search: .*, nonSearch: /);
      return true;
    },
  );
  const empty = join(tmp, 'empty.json');
  writeFileSync(empty, '{"search": ""}');
  assert.throws(() => readPromptFile(empty), /empty\.json is invalid \(search: must be a non-empty text/);
  assert.throws(() => readPromptFile(join(tmp, 'missing.yaml')), /missing\.yaml cannot be read/);
});
