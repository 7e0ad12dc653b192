// The policy protocol a CLI command puts in its workflow input: the prompt file's texts (read and
// validated here, once, so every workflow sees the same text and replays it) and the coordinate frame.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { SegflowConfig } from '../core/config/schema.js';
import { promptFileSchema, type PolicyProtocol, type SystemPrompts } from '../core/contracts/protocol.js';
import { BadInputError } from '../activities/errors.js';

/** A prompt file (YAML or JSON `{search, nonSearch}`), validated; errors name the file and the key. */
export function readPromptFile(path: string): SystemPrompts {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new BadInputError(`prompt file ${path} cannot be read: ${(err as Error).message}`, { path });
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new BadInputError(`prompt file ${path} is not YAML or JSON: ${(err as Error).message}`, { path });
  }
  const parsed = promptFileSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`)
      .join('; ');
    throw new BadInputError(
      `prompt file ${path} is invalid (${problems}); expected {search: <system prompt with the tools>, nonSearch: <in-video system prompt>}`,
      { path },
    );
  }
  return parsed.data;
}

/** The protocol fields of the config (`policy.promptFile`, `policy.coordinates`); empty by default. */
export function policyProtocolFrom(policy: SegflowConfig['policy']): PolicyProtocol {
  return {
    ...(policy.promptFile ? { systemPrompts: readPromptFile(policy.promptFile) } : {}),
    ...(policy.coordinates === 'pixels'
      ? {
          coordinates: {
            kind: 'qwen25vl' as const,
            resizedWidth: policy.pixelFrameSize,
            resizedHeight: policy.pixelFrameSize,
          },
        }
      : {}),
  };
}
