/**
 * Tool observations (spec §3.4, §7.1): the `<information>` block of a search, the image-search
 * block, and the neutralisation of untrusted web text.
 *
 * Web text is untrusted: a search result that contains `</information><answer>{…}</answer>` would,
 * if pasted verbatim, close the observation early and plant an answer that the reward (which reads
 * the whole decoded response, observations included) would score. Every piece of text that comes
 * from outside is passed through {@link neutraliseUntrustedText}, which replaces the `<` of anything
 * that could read as a protocol tag or a chat-template token by `‹` (U+2039). The replacement is one
 * code point for one, so the reference's 320-character cut lands on the same characters.
 */
import { pyLen, pySlice } from '../pycompat/text.js';
import { PROTOCOL_TAG_NAMES, Tags } from './tags.js';

/** What replaces `<` in front of a would-be tag. */
export const NEUTRALISED_LT = '\u2039';

const TAG_LIKE = new RegExp(`<(?=[\\s/]*(?:${PROTOCOL_TAG_NAMES.join('|')})(?![\\p{L}\\p{N}_]))`, 'giu');
const SPECIAL_TOKEN_LIKE = /<(?=\|)/gu;

/**
 * Make untrusted text unable to open or close a protocol tag (`<thinking>`, `</information>`,
 * `<answer>`, `<search>`, `<keyframe>`, `<image>`, `<tools>`, `<think>`, tool-call tags, in any
 * case, with spaces or slashes after the `<`) or to spell a chat-template token (`<|im_end|>`).
 * Other `<` characters (`a < b`, `<div>`) are left alone.
 */
export function neutraliseUntrustedText(text: string): string {
  return text.replace(TAG_LIKE, NEUTRALISED_LT).replace(SPECIAL_TOKEN_LIKE, NEUTRALISED_LT);
}

/** Settings of the search observation format. */
export interface InformationFormat {
  /**
   * Longest body kept, in code points, ellipsis included: a longer body keeps its first
   * `maxLength − 1` code points and gets `…` appended.
   * @default 320
   */
  maxLength: number;
}

export const DEFAULT_INFORMATION_FORMAT: InformationFormat = { maxLength: 320 };

/** One search hit: a title line and a body. */
export interface SearchHit {
  title: string;
  body: string;
}

/** Cut a body to `maxLength` code points the reference's way: `text[:max-1] + "…"`. */
export function truncateBody(body: string, maxLength: number): string {
  return pyLen(body) > maxLength ? `${pySlice(body, 0, Math.max(0, maxLength - 1))}…` : body;
}

/**
 * The text-search observation: `<information>` + `{i}. (Title: {title}) {body}\n` per hit (1-based,
 * bodies cut to 320 code points) + `</information>\n\n`. Titles and bodies are neutralised first.
 */
export function formatInformation(
  hits: readonly SearchHit[],
  format: InformationFormat = DEFAULT_INFORMATION_FORMAT,
): string {
  let refs = '';
  hits.forEach((hit, i) => {
    const title = neutraliseUntrustedText(hit.title);
    const body = truncateBody(neutraliseUntrustedText(hit.body), format.maxLength);
    refs += `${i + 1}. (Title: ${title}) ${body}\n`;
  });
  return `${Tags.informationOpen}${refs}${Tags.informationClose}\n\n`;
}

/**
 * A local-KB passage `"Title\nBody…"` as a hit, the reference's way: the title is the first line,
 * the body the remaining lines joined by `\n`; an empty passage is `No title` / `No content`.
 */
export function hitFromPassage(contents: string): SearchHit {
  if (contents.length === 0) return { title: 'No title', body: 'No content' };
  const lines = contents.split('\n');
  return { title: lines[0] ?? '', body: lines.slice(1).join('\n') };
}

/** The text-search observation for local-KB passages (`{"contents": "Title\nBody"}` documents). */
export function formatPassages(
  contents: readonly string[],
  format: InformationFormat = DEFAULT_INFORMATION_FORMAT,
): string {
  return formatInformation(contents.map(hitFromPassage), format);
}

/**
 * The image-search observation: `<information>` + `{i}. (Title: {name}) <image>\n` per image +
 * `</information>\n\n`; the images themselves travel beside the text, one per `<image>`.
 */
export function formatImageInformation(names: readonly string[]): string {
  let refs = '';
  names.forEach((name, i) => {
    refs += `${i + 1}. (Title: ${neutraliseUntrustedText(name)}) ${Tags.image}\n`;
  });
  return `${Tags.informationOpen}${refs}${Tags.informationClose}\n\n`;
}

/** Number of `<image>` placeholders in an observation (the policy client pairs them with images). */
export function countImagePlaceholders(observation: string): number {
  return observation.split(Tags.image).length - 1;
}
