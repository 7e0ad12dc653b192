// The scripted policies the integration and chaos tests serve through the fake vLLM server
// (test/servers/openai-server.ts): what the "model" writes for a conversation, so a test knows
// every trajectory's outcome in advance.
import type { WireMessage } from '../servers/openai-server.js';
import { expectedBox, type Behaviour, type Clip } from '../activity/evaluation/fixtures.js';

export function textOf(m: WireMessage | undefined): string {
  if (!m) return '';
  return typeof m.content === 'string' ? m.content : m.content.map((p) => p.text ?? '').join('');
}

/**
 * Training: `[search]` questions search first; then a keyframe, then an answer whose box hits the
 * target for even seeds and misses for odd ones (reward variance inside a group), except
 * `[constant]` questions, which always hit (zero variance: DAPO drops the group).
 */
export function trainingScript(
  messages: WireMessage[],
  _model: string,
  body: Record<string, unknown>,
): string {
  const user = textOf(messages[1]);
  const fid = [...user.matchAll(/frame (\d+)/g)].map((m) => Number(m[1]))[0] ?? 0;
  const turn = messages.filter((m) => m.role === 'assistant').length;
  const search = user.includes('[search]');
  const hit = '[200, 250, 700, 800]';
  const miss = '[10, 10, 60, 60]';
  if (search && turn === 0)
    return `<thinking>I need to look this up.</thinking>\n<search> {"name": "text_search", "query": "winning car"} </search>`;
  if (turn === (search ? 1 : 0))
    return `<thinking>Frame ${fid} shows it.</thinking>\n<keyframe> ${fid} </keyframe>`;
  const odd = typeof body.seed === 'number' && body.seed % 2 === 1;
  const box = user.includes('[constant]') || !odd ? hit : miss;
  return `<thinking>There it is.</thinking>\n<answer> {"bbox_2d": ${box}, "point_2d": [450, 500]} </answer>`;
}

/**
 * Evaluation: search (with the search prompt), keyframe, then the box the sample's fixture row says
 * (`[q1]`-style markers in the question name the row): exact, shifted, or no tags at all.
 * `nearMiss` widens every box past x = 1000 (the reference still segments it).
 */
export function evalScript(
  rows: ReadonlyMap<string, { clip: Clip; behaviour: Behaviour }>,
  messages: WireMessage[],
  opts: { nearMiss?: boolean } = {},
): string {
  const system = textOf(messages[0]);
  const user = textOf(messages[1]);
  const fids = [...user.matchAll(/frame (\d+) /g)].map((m) => Number(m[1]));
  const marker = /\[([qr]\d+)\]/.exec(user)?.[1] ?? '';
  const row = rows.get(marker);
  if (!row) return `<thinking>unknown sample</thinking>`;
  if (row.behaviour === 'no-tags') return 'I believe it is the one on the left.';
  const steps = system.includes('text_search') ? ['search', 'keyframe', 'answer'] : ['keyframe', 'answer'];
  const turn = messages.filter((m) => m.role === 'assistant').length;
  const key = fids[2] ?? fids[0] ?? 0;
  switch (steps[Math.min(turn, steps.length - 1)]) {
    case 'search':
      return `<thinking>I need to know more.</thinking>\n<search> {"name": "text_search", "query": "champion car ${marker}"} </search>`;
    case 'keyframe':
      return `<thinking>Frame ${key} shows it well.</thinking>\n<keyframe> ${key} </keyframe>`;
    default: {
      let box = expectedBox(row.clip, key);
      if (row.behaviour === 'shifted')
        box = [box[0] + 120, box[1] + 80, Math.min(1000, box[2] + 120), Math.min(1000, box[3] + 80)];
      if (opts.nearMiss) box = [box[0], box[1], 1004, box[3]];
      const point = [Math.round((box[0] + box[2]) / 2), Math.round((box[1] + box[3]) / 2)];
      return `<thinking>Found it.</thinking>\n<answer> {"bbox_2d": [${box.join(', ')}], "point_2d": [${point.join(', ')}]} </answer>`;
    }
  }
}
