/**
 * The artifact store on S3 (AWS S3, MinIO, SeaweedFS: same code, configured by endpoint, region,
 * path style and credentials). Puts are idempotent (same key + same SHA-256: no new write), large
 * objects go multipart, and files stream in both directions so nothing large is held in memory.
 */
import { ErrorTypes } from '../../core/contracts/errors.js';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { contentAddressedKey, parseS3Uri, type ArtifactRef } from '../../core/artifacts.js';
import { keyProblem } from '../../core/contracts/safe-key.js';
import type { SegflowConfig } from '../../core/config/schema.js';
import { BadInputError, ConfigError, SegflowError, TransientError } from '../errors.js';

/** Objects above this size are uploaded in parts. @default 16 MiB */
export const MULTIPART_THRESHOLD = 16 * 1024 * 1024;

/** Options of a file upload. */
export interface UploadOptions {
  /** Called as parts are sent (bytes so far, total bytes), e.g. to heartbeat a long upload. */
  onProgress?: (loaded: number, total: number) => void;
}

export class ArtifactNotFoundError extends SegflowError {
  constructor(uri: string) {
    super(ErrorTypes.artifactNotFound, `artifact ${uri} does not exist`, {
      retryable: false,
      details: { uri },
    });
  }
}

export function createS3Client(s3: SegflowConfig['s3']): S3Client {
  return new S3Client({
    region: s3.region,
    forcePathStyle: s3.forcePathStyle,
    ...(s3.endpoint ? { endpoint: s3.endpoint } : {}),
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    maxAttempts: 3,
  });
}

const nonRetryableCodes = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'NoSuchBucket',
  'InvalidBucketName',
  'InvalidArgument',
  'EntityTooLarge',
]);

/** Maps an S3 SDK or network error onto segflow's retryable / non-retryable classes. */
export function classifyS3Error(err: unknown, what: string): SegflowError {
  if (err instanceof SegflowError) return err;
  if (err instanceof S3ServiceException) {
    const status = err.$metadata.httpStatusCode ?? 0;
    if (
      nonRetryableCodes.has(err.name) ||
      (status >= 400 && status < 500 && status !== 429 && status !== 408)
    ) {
      const hint =
        err.name === 'NoSuchBucket'
          ? ' (create it, or run `segr dev up` for the dev stack)'
          : status === 403
            ? ' (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)'
            : '';
      return new ConfigError(`S3 ${what} failed: ${err.name}: ${err.message}${hint}`, {
        status,
        code: err.name,
      });
    }
    return new TransientError(
      `S3 ${what} failed: ${err.name}: ${err.message}`,
      { status, code: err.name },
      err,
    );
  }
  const e = err as Error;
  return new TransientError(`S3 ${what} failed: ${e?.message ?? String(err)}`, {}, err);
}

function isNotFound(err: unknown): boolean {
  return (
    err instanceof S3ServiceException &&
    (err.name === 'NotFound' || err.name === 'NoSuchKey' || err.$metadata.httpStatusCode === 404)
  );
}

/** Refuses an unsafe key (see keyOf) as bad input, naming it. */
function guardKey(key: string, as: string, allowEmpty = false): void {
  const problem = keyProblem(key, { allowEmpty });
  if (problem) {
    throw new BadInputError(
      `unsafe S3 key ${JSON.stringify(as)}: ${problem}; keys built from ids and inputs must be plain ` +
        'path segments (no "..", no leading or double "/", no backslash or control characters)',
      { key: as },
    );
  }
}

export async function sha256OfFile(path: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

export interface ArtifactStoreOptions {
  bucket: string;
  /** Prepended to every key. @default "" */
  prefix?: string;
}

export class ArtifactStore {
  readonly bucket: string;
  readonly prefix: string;

  constructor(
    readonly client: S3Client,
    options: ArtifactStoreOptions,
  ) {
    this.bucket = options.bucket;
    this.prefix = options.prefix ? options.prefix.replace(/\/*$/, '/') : '';
  }

  static fromConfig(s3: SegflowConfig['s3']): ArtifactStore {
    return new ArtifactStore(createS3Client(s3), { bucket: s3.bucket, prefix: s3.prefix });
  }

  uriOf(key: string): string {
    return `s3://${this.bucket}/${this.prefix}${key}`;
  }

  /**
   * The bucket key of a store-relative key or an `s3://` URI. Every key passes the one guard for
   * names built from input (core/contracts/safe-key.ts): a run, query or sample id with `..`, an
   * absolute or empty segment, or a control character never reaches S3.
   */
  private keyOf(keyOrUri: string, opts: { allowEmpty?: boolean } = {}): string {
    if (keyOrUri.startsWith('s3://')) {
      const { bucket, key } = parseS3Uri(keyOrUri);
      if (bucket !== this.bucket) {
        throw new BadInputError(
          `artifact ${keyOrUri} is in bucket "${bucket}", this store serves "${this.bucket}"`,
        );
      }
      guardKey(key, keyOrUri);
      return key;
    }
    guardKey(keyOrUri, keyOrUri, opts.allowEmpty);
    return this.prefix + keyOrUri;
  }

  /** Creates the bucket if it does not exist (dev stack, tests). */
  async ensureBucket(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (err) {
      if (!isNotFound(err) && !(err instanceof S3ServiceException && err.name === 'NoSuchBucket')) {
        throw classifyS3Error(err, `head bucket ${this.bucket}`);
      }
    }
    try {
      await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      if (err instanceof S3ServiceException && /BucketAlready(OwnedByYou|Exists)/.test(err.name)) return;
      throw classifyS3Error(err, `create bucket ${this.bucket}`);
    }
  }

  /** The ref of an existing object, or undefined. */
  async head(keyOrUri: string): Promise<ArtifactRef | undefined> {
    const key = this.keyOf(keyOrUri);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return {
        uri: `s3://${this.bucket}/${key}`,
        sha256: out.Metadata?.sha256 ?? '',
        bytes: out.ContentLength ?? 0,
        contentType: out.ContentType ?? 'application/octet-stream',
      };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw classifyS3Error(err, `head ${key}`);
    }
  }

  /** Puts bytes at `key`; a second put of the same bytes is a no-op. */
  async putBytes(key: string, body: Uint8Array, contentType: string): Promise<ArtifactRef> {
    const sha256 = createHash('sha256').update(body).digest('hex');
    const existing = await this.head(key);
    if (existing && existing.sha256 === sha256) return existing;
    const fullKey = this.keyOf(key);
    try {
      if (body.byteLength > MULTIPART_THRESHOLD) {
        await this.upload(fullKey, Readable.from([Buffer.from(body)]), contentType, sha256);
      } else {
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: fullKey,
            Body: body,
            ContentType: contentType,
            Metadata: { sha256 },
          }),
        );
      }
    } catch (err) {
      throw classifyS3Error(err, `put ${fullKey}`);
    }
    return { uri: `s3://${this.bucket}/${fullKey}`, sha256, bytes: body.byteLength, contentType };
  }

  /** Puts bytes under a content-addressed key in `namespace`. */
  async putContentAddressed(
    namespace: string,
    body: Uint8Array,
    contentType: string,
    extension: string,
  ): Promise<ArtifactRef> {
    const sha256 = createHash('sha256').update(body).digest('hex');
    return this.putBytes(contentAddressedKey(namespace, sha256, extension), body, contentType);
  }

  /** Streams a file to `key` (multipart when large); a second put of the same file is a no-op. */
  async putFile(
    key: string,
    path: string,
    contentType: string,
    opts: UploadOptions = {},
  ): Promise<ArtifactRef> {
    const { sha256, bytes } = await sha256OfFile(path);
    const existing = await this.head(key);
    if (existing && existing.sha256 === sha256) return existing;
    const fullKey = this.keyOf(key);
    try {
      await this.upload(
        fullKey,
        createReadStream(path, { highWaterMark: 1 << 20 }),
        contentType,
        sha256,
        opts,
      );
    } catch (err) {
      throw classifyS3Error(err, `put ${fullKey} from ${path}`);
    }
    return { uri: `s3://${this.bucket}/${fullKey}`, sha256, bytes, contentType };
  }

  /** Streams a file under a content-addressed key in `namespace`. */
  async putFileContentAddressed(
    namespace: string,
    path: string,
    contentType: string,
    extension: string,
    opts: UploadOptions = {},
  ): Promise<ArtifactRef> {
    const { sha256 } = await sha256OfFile(path);
    return this.putFile(contentAddressedKey(namespace, sha256, extension), path, contentType, opts);
  }

  private async upload(
    key: string,
    body: Readable,
    contentType: string,
    sha256: string,
    opts: UploadOptions = {},
  ): Promise<void> {
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: key, Body: body, ContentType: contentType, Metadata: { sha256 } },
      partSize: 8 * 1024 * 1024,
      queueSize: 2,
      leavePartsOnError: false,
    });
    const { onProgress } = opts;
    if (onProgress) upload.on('httpUploadProgress', (p) => onProgress(p.loaded ?? 0, p.total ?? 0));
    await upload.done();
  }

  /** The object as a stream. */
  async getStream(keyOrUri: string): Promise<Readable> {
    const key = this.keyOf(keyOrUri);
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return out.Body as Readable;
    } catch (err) {
      if (isNotFound(err)) throw new ArtifactNotFoundError(`s3://${this.bucket}/${key}`);
      throw classifyS3Error(err, `get ${key}`);
    }
  }

  /** The whole object in memory: for small artifacts only (JSON, masks, thumbnails). */
  async getBytes(keyOrUri: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of await this.getStream(keyOrUri)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async getJson<T = unknown>(keyOrUri: string): Promise<T> {
    return JSON.parse((await this.getBytes(keyOrUri)).toString('utf8')) as T;
  }

  /**
   * Reads a JSON artifact an activity was handed as input: a missing object or invalid JSON is a
   * non-retryable BadInputError naming `what` and the URI.
   */
  async getInputJson<T = unknown>(keyOrUri: string, what: string): Promise<T> {
    try {
      return await this.getJson<T>(keyOrUri);
    } catch (err) {
      if (err instanceof ArtifactNotFoundError) {
        throw new BadInputError(`${what} ${keyOrUri} does not exist`, { uri: keyOrUri }, err);
      }
      if (err instanceof SyntaxError) {
        throw new BadInputError(`${what} ${keyOrUri} is not JSON: ${err.message}`, { uri: keyOrUri }, err);
      }
      throw err;
    }
  }

  async putJson(key: string, value: unknown): Promise<ArtifactRef> {
    return this.putBytes(key, Buffer.from(JSON.stringify(value)), 'application/json');
  }

  /** Streams an object to a file and checks its SHA-256 against `ref` when one is given. */
  async downloadToFile(refOrKey: ArtifactRef | string, path: string): Promise<void> {
    const keyOrUri = typeof refOrKey === 'string' ? refOrKey : refOrKey.uri;
    await mkdir(dirname(path), { recursive: true });
    const hash = createHash('sha256');
    const source = await this.getStream(keyOrUri);
    source.on('data', (chunk: Buffer) => hash.update(chunk));
    await pipeline(source, createWriteStream(path));
    if (typeof refOrKey !== 'string' && refOrKey.sha256) {
      const got = hash.digest('hex');
      if (got !== refOrKey.sha256) {
        throw new TransientError(`downloaded ${refOrKey.uri} has sha256 ${got}, expected ${refOrKey.sha256}`);
      }
    }
    await stat(path);
  }

  /** Keys under a prefix (relative to the store's own prefix), paginated lazily. */
  async *list(prefix: string): AsyncGenerator<{ key: string; bytes: number }> {
    let token: string | undefined;
    do {
      let out;
      try {
        out = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.keyOf(prefix, { allowEmpty: true }),
            ContinuationToken: token,
          }),
        );
      } catch (err) {
        throw classifyS3Error(err, `list ${prefix}`);
      }
      for (const obj of out.Contents ?? []) {
        if (obj.Key) yield { key: obj.Key.slice(this.prefix.length), bytes: obj.Size ?? 0 };
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  }

  /** A time-limited GET URL (for handing images to a policy server). */
  async presign(keyOrUri: string, expiresInSeconds = 3600): Promise<string> {
    const key = this.keyOf(keyOrUri);
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: key }), {
      expiresIn: expiresInSeconds,
    });
  }
}
