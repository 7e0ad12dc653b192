/**
 * How images reach a policy server (OpenAI-compatible `image_url`): a presigned S3 GET URL (small
 * requests; the server must reach S3) or a base64 data URL (works with any server; larger
 * requests). Called by the activity that talks to the policy, just before the request, so image
 * bytes never travel through workflow history.
 *
 * Every turn of a rollout sends its whole history again, so the same frames are asked for at every
 * turn. Data URLs are kept in a bounded in-memory LRU (`lru-cache`, by size) keyed by the ref's URI
 * and SHA-256: an artifact ref names immutable bytes, so a hit is the very URL a fresh read would
 * give; concurrent asks for one image share one S3 read.
 */
import { LRUCache } from 'lru-cache';
import type { ArtifactRef } from '../../core/artifacts.js';
import type { ArtifactStore } from '../storage/artifact-store.js';

/** Same values as the config's `policy.imageTransport`. */
export type PolicyImageMode = 'data-url' | 'presigned-url';

export interface PolicyImageOptions {
  /** @default "data-url" */
  mode?: PolicyImageMode;
  /** Lifetime of presigned URLs in seconds. @default 3600 */
  expiresInSeconds?: number;
  /** Most data-URL characters kept in memory (0: none kept). @default 64 MiB */
  cacheChars?: number;
}

export const DEFAULT_IMAGE_CACHE_CHARS = 64 * 1024 * 1024;

export class PolicyImages {
  private readonly dataUrls?: LRUCache<string, string, ArtifactRef>;

  constructor(
    private readonly store: ArtifactStore,
    private readonly opts: PolicyImageOptions = {},
  ) {
    const maxSize = opts.cacheChars ?? DEFAULT_IMAGE_CACHE_CHARS;
    if (maxSize > 0) {
      this.dataUrls = new LRUCache<string, string, ArtifactRef>({
        maxSize,
        sizeCalculation: (url) => url.length,
        fetchMethod: (_key, _stale, { context }) => this.read(context),
      });
    }
  }

  /** The URL a policy server is given for `ref`. */
  async url(ref: ArtifactRef): Promise<string> {
    if ((this.opts.mode ?? 'data-url') === 'presigned-url')
      return this.store.presign(ref.uri, this.opts.expiresInSeconds ?? 3600);
    if (!this.dataUrls) return this.read(ref);
    // an image larger than the whole cache is not kept (lru-cache skips it) and is read every time
    return (await this.dataUrls.fetch(`${ref.uri}#${ref.sha256}`, { context: ref }))!;
  }

  /** The URLs of several images, in order. */
  urls(refs: readonly ArtifactRef[]): Promise<string[]> {
    return Promise.all(refs.map((r) => this.url(r)));
  }

  /** Data URLs held now, and their characters: for tests and metrics. */
  get cached(): { entries: number; chars: number } {
    return { entries: this.dataUrls?.size ?? 0, chars: this.dataUrls?.calculatedSize ?? 0 };
  }

  private async read(ref: ArtifactRef): Promise<string> {
    const bytes = await this.store.getBytes(ref.uri);
    return `data:${ref.contentType};base64,${bytes.toString('base64')}`;
  }
}
