/**
 * Loads the one segflow config: defaults < the Temporal client profile (temporal.* only:
 * temporal-profile.ts) < file (YAML or JSON) < environment < explicit overrides.
 * An invalid value fails with the key, the value, where it came from and what is allowed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { configSchema, envBindings, secretKeys, type SegflowConfig } from '../../core/config/schema.js';
import { ConfigError } from '../errors.js';
import { temporalProfileValues } from './temporal-profile.js';
import { registerSecrets, secretValuesOf } from './redact.js';

export interface LoadConfigOptions {
  /** Config file path; else `SEGFLOW_CONFIG`; else `./segflow.config.yaml` if present. */
  file?: string;
  /** @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Highest-precedence values by dotted key (CLI flags). */
  overrides?: Record<string, unknown>;
}

export interface LoadedConfig {
  config: SegflowConfig;
  /** Where each explicitly set key came from (`file <path>`, `env NAME`, `flag`). */
  sources: Record<string, string>;
  file?: string;
}

type Tree = Record<string, unknown>;

const emptyAllowed = new Set(['s3.endpoint', 's3.prefix']);

function setPath(tree: Tree, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let node = tree;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[part] = {};
    node = node[part] as Tree;
  }
  node[parts[parts.length - 1]!] = value;
}

function getPath(tree: unknown, path: readonly PropertyKey[]): unknown {
  let node = tree;
  for (const part of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<PropertyKey, unknown>)[part];
  }
  return node;
}

function flatten(tree: unknown, prefix = ''): [string, unknown][] {
  if (typeof tree !== 'object' || tree === null || Array.isArray(tree)) return [[prefix, tree]];
  return Object.entries(tree).flatMap(([k, v]) => flatten(v, prefix ? `${prefix}.${k}` : k));
}

function readConfigFile(file: string): Tree {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`, { file });
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid YAML/JSON: ${(err as Error).message}`, { file });
  }
  if (parsed == null) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${file} must hold a mapping of sections (temporal, s3, ...)`, {
      file,
    });
  }
  return parsed as Tree;
}

export function loadConfig(options: LoadConfigOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const raw: Tree = {};
  const sources: Record<string, string> = {};

  const profile = temporalProfileValues(env);
  for (const [key, value] of profile.values) {
    setPath(raw, key, value);
    sources[key] = profile.source;
  }
  const defaultFile = resolve('segflow.config.yaml');
  const file = options.file ?? env.SEGFLOW_CONFIG ?? (existsSync(defaultFile) ? defaultFile : undefined);
  if (file) {
    for (const [key, value] of flatten(readConfigFile(file))) {
      setPath(raw, key, value);
      sources[key] = `file ${file}`;
    }
  }
  for (const [name, key] of Object.entries(envBindings)) {
    const value = env[name];
    // Empty means "unset", except where empty is a real value (no endpoint = AWS S3; no prefix).
    if (value === undefined || (value === '' && !emptyAllowed.has(key))) continue;
    // SEGFLOW_* names win over the standard ones they shadow.
    if (sources[key]?.startsWith('env SEGFLOW_') && !name.startsWith('SEGFLOW_')) continue;
    setPath(raw, key, value);
    sources[key] = `env ${name}`;
  }
  for (const [key, value] of Object.entries(options.overrides ?? {})) {
    if (value === undefined) continue;
    setPath(raw, key, value);
    sources[key] = 'flag';
  }

  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      let key = issue.path.join('.');
      if (issue.code === 'unrecognized_keys') {
        const where = key ? `section "${key}"` : 'the top level';
        return `unknown config key(s) ${issue.keys.map((k) => `"${key ? `${key}.` : ''}${k}"`).join(', ')} in ${where}; known keys are listed by \`segr config\``;
      }
      // A transformed value (e.g. a comma list) fails on an item: report the value as it was given.
      let depth = issue.path.length;
      while (depth > 0 && getPath(raw, issue.path.slice(0, depth)) === undefined) depth--;
      const item =
        depth > 0 && depth < issue.path.length ? ` (item ${issue.path.slice(depth).join('.')})` : '';
      if (depth > 0) key = issue.path.slice(0, depth).join('.');
      const value = getPath(raw, issue.path.slice(0, depth || issue.path.length));
      const shown = secretKeys.includes(key as (typeof secretKeys)[number]) ? '"***"' : JSON.stringify(value);
      const from = sources[key] ? ` (from ${sources[key]})` : '';
      return `config key "${key}" = ${shown}${from} is invalid${item}: ${issue.message}`;
    });
    throw new ConfigError(problems.join('\n'), { issues: problems });
  }
  const config = result.data;
  // Unless set explicitly, clients talk to the dev stack on the ports it was configured with.
  const d = config.dev;
  if (!sources['temporal.address']) config.temporal.address = `${d.host}:${d.temporalPort}`;
  if (!sources['temporal.uiUrl']) config.temporal.uiUrl = `http://${d.host}:${d.uiPort}`;
  if (!sources['s3.endpoint']) config.s3.endpoint = `http://${d.host}:${d.s3Port}`;
  // from now on this process scrubs these values from failures and logs (runtime/redact.ts)
  registerSecrets(secretValuesOf(config));
  return { config, sources, ...(file ? { file } : {}) };
}

/** A copy with secret values replaced by "***", for printing and logging. */
export function redactConfig(config: SegflowConfig): unknown {
  const copy = structuredClone(config) as Tree;
  for (const key of secretKeys) {
    if (getPath(copy, key.split('.')) !== undefined) setPath(copy, key, '***');
  }
  return copy;
}
