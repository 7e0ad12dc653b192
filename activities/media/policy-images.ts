/**
 * How images reach a policy server (OpenAI-compatible `image_url`): a presigned S3 GET URL (small
 * requests; the server must reach S3) or a base64 data URL (works with any server; larger
 * requests). Called by the activity that talks to the policy, just before the request, so image
 * bytes never travel through workflow history.
 */
import type { ArtifactRef } from '../../core/artifacts.js';
import type { ArtifactStore } from '../storage/artifact-store.js';

/** Same values as the config's `policy.imageTransport`. */
export type PolicyImageMode = 'data-url' | 'presigned-url';

export interface PolicyImageOptions {
  /** @default "data-url" */
  mode?: PolicyImageMode;
  /** Lifetime of presigned URLs in seconds. @default 3600 */
  expiresInSeconds?: number;
}

/** The URL a policy server is given for `ref`. */
export async function policyImageUrl(
  store: ArtifactStore,
  ref: ArtifactRef,
  opts: PolicyImageOptions = {},
): Promise<string> {
  if ((opts.mode ?? 'data-url') === 'presigned-url')
    return store.presign(ref.uri, opts.expiresInSeconds ?? 3600);
  const bytes = await store.getBytes(ref.uri);
  return `data:${ref.contentType};base64,${bytes.toString('base64')}`;
}

/** The URLs of several images, in order. */
export function policyImageUrls(
  store: ArtifactStore,
  refs: readonly ArtifactRef[],
  opts: PolicyImageOptions = {},
): Promise<string[]> {
  return Promise.all(refs.map((r) => policyImageUrl(store, r, opts)));
}
