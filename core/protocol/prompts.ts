/**
 * System prompts and the user message (spec §2 "Prompt assembly", §3.1).
 *
 * The wording here is our own paraphrase of the reference prompts; every tag, the tool JSON shape,
 * the tool names and the three output patterns are exact. A checkpoint trained on the reference's
 * exact text can be served with that text instead: pass it as `override` to {@link systemPrompt}
 * (the workflow input carries it; core never reads files).
 */
import { pyJsonDumps } from '../pycompat/pyjson.js';
import { SEARCH_TOOL_NAMES, Tags } from './tags.js';

/** Sample abilities of OK-VOS (spec §2, §10). `in-video` samples get the non-search prompt. */
export const ABILITIES = ['in-video', 'one-hop', 'multi-hop', 'relational'] as const;
export type Ability = (typeof ABILITIES)[number];

/** One tool spec as it appears, one JSON object per line, inside `<tools>`. */
export interface ToolSpec {
  name: string;
  description: string;
  parameters: Record<string, { type: 'string'; description: string }>;
}

/** The two tools of the search prompt. */
export const SEARCH_TOOLS: readonly ToolSpec[] = [
  {
    name: SEARCH_TOOL_NAMES[0],
    description: 'Look up textual information on the web.',
    parameters: { query: { type: 'string', description: 'Keywords or a short phrase to search for' } },
  },
  {
    name: SEARCH_TOOL_NAMES[1],
    description: 'Look up images on the web.',
    parameters: { query: { type: 'string', description: 'Keywords or a short phrase to search for' } },
  },
];

/** The `<tools>` block: one compact JSON object per line, as in the reference. */
export function toolsBlock(tools: readonly ToolSpec[] = SEARCH_TOOLS): string {
  const lines = tools.map((t) =>
    pyJsonDumps({ name: t.name, description: t.description, parameters: { ...t.parameters } }),
  );
  return `${Tags.toolsOpen}\n${lines.join('\n')}\n${Tags.toolsClose}`;
}

const KEYFRAME_STEP = `${Tags.thinkingOpen} (1) Compare every candidate object in the video with the query and settle on the one that fits it best; (2) pick the frame in which that target is seen most clearly. ${Tags.thinkingClose}
${Tags.keyframeOpen} [integer frame_index] ${Tags.keyframeClose}`;

const ANSWER_STEP = `${Tags.thinkingOpen} (1) Describe what makes the target visually distinctive, to show you have found it; (2) work out its exact 2D position: a bounding box and one point that lies on the object. ${Tags.thinkingClose}
${Tags.answerOpen} {"bbox_2d": [x1,y1,x2,y2], "point_2d": [x,y]} ${Tags.answerClose}`;

/** The system prompt for samples that may search (`one-hop`, `multi-hop`, `relational`). */
export const SEARCH_SYSTEM_PROMPT = `You are an assistant that identifies a target object in a video and can search the web.
You receive an object query and a series of video frames; each frame is introduced by its index.
Locate the target with a bounding box and a point in a frame of your choice.

# Tools
These tools are available to you:

${toolsBlock()}

Every tool returns its top results between ${Tags.informationOpen} and ${Tags.informationClose}.

# Output format
At each step, produce exactly one of the following.

## 0. When you need to search the web (any number of times, including none):
${Tags.thinkingOpen} (1) Plan how you will reason; (2) explain why a web search is needed. ${Tags.thinkingClose}
${Tags.searchOpen} {"name": <tool-name>, "query": <string>} ${Tags.searchClose}

## 1. Reason about the query and the video:
${KEYFRAME_STEP}

## 2. After you receive the high-resolution keyframe:
${ANSWER_STEP}

# IMPORTANT
At every step:
1. Look at the video frames before deciding whether to search.
2. Never search for anything that the video itself shows.
3. Do not search just to analyse the frames.

`;

/** The system prompt for `in-video` samples: keyframe then answer, no tools. */
export const NON_SEARCH_SYSTEM_PROMPT = `You are a video reasoning assistant that works in two steps.
You receive an object query and a series of video frames; each frame is introduced by its index.
Locate the target with a bounding box and a point in a frame of your choice.

# Output format

## 1. Reason about the query and the video:
${KEYFRAME_STEP}

## 2. After you receive the high-resolution keyframe:
${ANSWER_STEP}

Note: if no matching target exists, answer keyframe -1, "bbox_2d" [0,0,0,0] and "point_2d" [0,0].

`;

/** The system prompt for a sample: non-search for `in-video`, search otherwise. */
export function systemPrompt(ability: Ability, override?: { search?: string; nonSearch?: string }): string {
  if (ability === 'in-video') return override?.nonSearch ?? NON_SEARCH_SYSTEM_PROMPT;
  return override?.search ?? SEARCH_SYSTEM_PROMPT;
}

/** The question of an OK-VOS sample: `Please find '<query>' in the provided video.` */
export function okvosQuestion(query: string): string {
  return `Please find '${query}' in the provided video.`;
}

/**
 * The user message: `frame {fid} <image>\n` for each sampled frame, then `\n{question}`.
 * `fid` is the integer frame id from the file name, not the position in the sample.
 */
export function buildUserMessage(frameIds: readonly number[], question: string): string {
  let out = '';
  for (const fid of frameIds) out += `frame ${fid} ${Tags.image}\n`;
  return `${out}\n${question}`;
}

/** A chat message of the rollout; `content` may contain `<image>` placeholders. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** The two prompt messages of a sample (spec §2). */
export function buildPromptMessages(input: {
  ability: Ability;
  frameIds: readonly number[];
  question: string;
  systemPromptOverride?: { search?: string; nonSearch?: string };
}): ChatMessage[] {
  return [
    { role: 'system', content: systemPrompt(input.ability, input.systemPromptOverride) },
    { role: 'user', content: buildUserMessage(input.frameIds, input.question) },
  ];
}
