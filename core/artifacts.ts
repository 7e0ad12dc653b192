/** References to artifacts in S3. Workflows carry these, never bytes. */
import { z } from 'zod';

export const artifactRefSchema = z.strictObject({
  /** `s3://<bucket>/<key>` */
  uri: z.string().regex(/^s3:\/\/[^/]+\/.+/, 'must look like s3://bucket/key'),
  /** Lower-case hex SHA-256 of the object's bytes. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex characters'),
  bytes: z.number().int().min(0),
  contentType: z.string().min(1),
});

export type ArtifactRef = z.infer<typeof artifactRefSchema>;

/** Splits `s3://bucket/key` into its parts. */
export function parseS3Uri(uri: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (!m) throw new Error(`not an s3:// URI: ${JSON.stringify(uri)} (expected s3://bucket/key)`);
  return { bucket: m[1]!, key: m[2]! };
}

/** Content-addressed key: the same bytes always land at the same key. */
export function contentAddressedKey(namespace: string, sha256: string, extension: string): string {
  const ext = extension.replace(/^\./, '');
  return `${namespace.replace(/\/+$/, '')}/sha256/${sha256.slice(0, 2)}/${sha256}${ext ? `.${ext}` : ''}`;
}
