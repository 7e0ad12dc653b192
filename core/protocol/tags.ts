/**
 * The tag inventory and constants of the Seg-ReSearch turn protocol (spec §3.1, §3.3, §4).
 * Seg-ReSearch uses `<thinking>`; the Seg-Zero variant uses `<think>` (see `segzero.ts`).
 */

export const Tags = {
  thinkingOpen: '<thinking>',
  thinkingClose: '</thinking>',
  searchOpen: '<search>',
  searchClose: '</search>',
  keyframeOpen: '<keyframe>',
  keyframeClose: '</keyframe>',
  answerOpen: '<answer>',
  answerClose: '</answer>',
  informationOpen: '<information>',
  informationClose: '</information>',
  toolsOpen: '<tools>',
  toolsClose: '</tools>',
  /** Placeholder for one image; the policy client replaces it by the model's vision tokens. */
  image: '<image>',
} as const;

/**
 * Tag names that carry protocol meaning anywhere in the context (ours, Seg-Zero's and the chat
 * template's tool tags). Untrusted text must never contain one of these as a tag.
 */
export const PROTOCOL_TAG_NAMES = [
  'thinking',
  'think',
  'search',
  'information',
  'keyframe',
  'answer',
  'tools',
  'image',
  'tool_call',
  'tool_response',
] as const;

/** The two search tools a policy may call. */
export const SEARCH_TOOL_NAMES = ['text_search', 'image_search'] as const;
export type SearchToolName = (typeof SEARCH_TOOL_NAMES)[number];

/**
 * Generation stops after these strings (included in the output): an assistant turn that ends with
 * one of them is an action for the tool server. An answer turn ends with end-of-sequence instead.
 */
export const ACTION_STOP_STRINGS = ['</search>', '</keyframe>'] as const;

/** Qwen's `<|im_end|>`, listed by the reference as an extra EOS id (compatibility only). */
export const IM_END = '<|im_end|>';
export const IM_END_TOKEN_ID = 151645;

/**
 * Special tokens of the Qwen2.5-VL / Qwen3-VL tokenizers that `decode(skip_special_tokens=True)`
 * removes. Rewards are computed on that decoding (spec §4), so logged outputs that still contain
 * them are cleaned with {@link stripSpecialTokens} first.
 */
export const QWEN_SPECIAL_TOKENS = [
  '<|endoftext|>',
  '<|im_start|>',
  '<|im_end|>',
  '<|object_ref_start|>',
  '<|object_ref_end|>',
  '<|box_start|>',
  '<|box_end|>',
  '<|quad_start|>',
  '<|quad_end|>',
  '<|vision_start|>',
  '<|vision_end|>',
  '<|vision_pad|>',
  '<|image_pad|>',
  '<|video_pad|>',
] as const;

/** The text of `<V>`, one image in the Qwen chat template (expanded by the processor). */
export const QWEN_VISION_PLACEHOLDER = '<|vision_start|><|image_pad|><|vision_end|>';

/** What `tokenizer.decode(ids, skip_special_tokens=True)` leaves of a decoded-with-specials text. */
export function stripSpecialTokens(text: string): string {
  let out = text;
  for (const t of QWEN_SPECIAL_TOKENS) out = out.split(t).join('');
  return out;
}
