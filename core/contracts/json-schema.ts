/**
 * The contracts the Python trainer reads, as JSON files: one JSON Schema (draft 2020-12, the
 * *input* side: fields with defaults are optional) per record in `trainerSchemas`, `keys.json`
 * with the S3 key templates and failure types it shares, and `payload-codec.json`, the payload
 * codec's wire format (payload-codec.ts), and `redaction.json`, what error texts are scrubbed of
 * (core/redact.ts). scripts/export-contracts.js writes them to
 * trainer/segflow_trainer/schemas/ at every `npm run build`; test/unit/core/contracts.test.ts fails
 * when the committed files are stale.
 */
import { z } from 'zod';
import { ErrorTypes } from './errors.js';
import { KeyTemplates } from './keys.js';
import { PayloadCodecFormat } from './payload-codec.js';
import { SecretPatterns } from '../redact.js';
import { trainerSchemas } from './training.js';

export const TRAINER_SCHEMA_DIR = 'trainer/segflow_trainer/schemas';

/** File name → JSON text (2-space indent, trailing newline). */
export function trainerContractFiles(): Record<string, string> {
  const files: Record<string, string> = {};
  for (const [name, schema] of Object.entries(trainerSchemas)) {
    const json = z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'throw' });
    files[`${name}.json`] = `${JSON.stringify({ title: name, ...json }, null, 2)}\n`;
  }
  files['keys.json'] = `${JSON.stringify({ keyTemplates: KeyTemplates, errorTypes: ErrorTypes }, null, 2)}\n`;
  files['payload-codec.json'] = `${JSON.stringify(PayloadCodecFormat, null, 2)}\n`;
  files['redaction.json'] = `${JSON.stringify(SecretPatterns, null, 2)}\n`;
  return files;
}
