/**
 * The global `-o, --output <format>` (text | json): one meaning for every command. A command prints
 * its result through `emit`: `json` writes the value as one JSON document on stdout, `text` runs the
 * command's own text rendering (unchanged). Progress and chatter go to stderr in both formats.
 * A command's old boolean `--json` flag is an alias of `--output json`.
 */
import { Option, type Command } from 'commander';

export const outputFormats = ['text', 'json'] as const;
export type OutputFormat = (typeof outputFormats)[number];

/** The root program's option. */
export function outputOption(): Option {
  return new Option('-o, --output <format>', 'result format on stdout (progress goes to stderr)')
    .choices([...outputFormats])
    .default('text');
}

/**
 * The format a command prints in: `json` when `--output json` (anywhere on the command line) or the
 * command's own boolean `--json` alias is given; else `text`. A string-valued `--json <file>`
 * (`segr eval`'s old report-file flag) is not the alias.
 */
export function outputFormat(cmd: Command): OutputFormat {
  const opts = cmd.optsWithGlobals<{ output?: string; json?: unknown }>();
  if (opts.json === true) return 'json';
  return opts.output === 'json' ? 'json' : 'text';
}

/** One JSON document as `--output json` prints it. */
export function jsonDocument(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/**
 * Prints a command's result: in json, `value` as one document on stdout; in text, `renderText`
 * (a string printed with a newline, or a function that prints the command's usual text).
 */
export function emit(
  cmd: Command,
  value: unknown,
  renderText: string | (() => void),
  write: (s: string) => void = (s) => void process.stdout.write(s),
): void {
  if (outputFormat(cmd) === 'json') write(jsonDocument(value));
  else if (typeof renderText === 'string') write(`${renderText}\n`);
  else renderText();
}
