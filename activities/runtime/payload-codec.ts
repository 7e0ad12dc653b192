/**
 * The optional Temporal payload codec: AES-256-GCM encryption with optional zlib compression, in
 * the wire format of core/contracts/payload-codec.ts (the Python trainer's segflow_trainer/codec.py
 * speaks the same). Off unless `codec.keys` / `codec.keyFile` is set; then every client and worker
 * of the process (workers/temporal-connection.ts, workers/run.ts) and `segr codec-server` use it.
 *
 * Written on node:crypto and node:zlib directly: the Temporal samples' encryption codec is sample
 * code, not a package, and the format must match the Python side byte for byte.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { deflateSync, inflateSync } from 'node:zlib';
import type { Payload, PayloadCodec } from '@temporalio/common';
import proto from '@temporalio/proto';
import type { SegflowConfig } from '../../core/config/schema.js';
import {
  PayloadCodecFormat as F,
  payloadAssociatedData,
  type PayloadCompression,
} from '../../core/contracts/payload-codec.js';
import { ConfigError, SegflowError } from '../errors.js';

// a CommonJS package: its namespace comes through the default export
const ProtoPayload = proto.temporal.api.common.v1.Payload;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

export interface CodecKey {
  id: string;
  /** 32 bytes. */
  key: Buffer;
}

/** A payload this process cannot decode (unknown key, tampered or truncated data). */
export class PayloadCodecError extends SegflowError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('PayloadCodecError', message, { retryable: false, details });
  }
}

const keyIdPattern = new RegExp(`^[A-Za-z0-9._-]{1,${F.keyIdMaxLength}}$`);

/**
 * `id:base64key` entries separated by commas or white space, as `codec.keys` holds them. Errors
 * name the entry by position and id, never its key material.
 */
export function parseCodecKeys(text: string, source: string): CodecKey[] {
  const entries = text
    .split(/[\s,]+/)
    .map((e) => e.trim())
    .filter(Boolean);
  if (entries.length === 0) {
    throw new ConfigError(
      `${source} holds no key: expected "id:base64key" entries (openssl rand -base64 32)`,
    );
  }
  const seen = new Set<string>();
  return entries.map((entry, i) => {
    const colon = entry.indexOf(':');
    const id = colon < 0 ? '' : entry.slice(0, colon);
    if (!keyIdPattern.test(id)) {
      throw new ConfigError(
        `${source} entry ${i + 1} is not "id:base64key" with an id of 1-${F.keyIdMaxLength} letters, digits, ".", "_" or "-"`,
      );
    }
    const material = entry.slice(colon + 1);
    const key = Buffer.from(material, 'base64');
    if (key.length !== F.keyBytes || !/^[A-Za-z0-9+/]+={0,2}$/.test(material)) {
      throw new ConfigError(
        `${source} key "${id}" is not ${F.keyBytes} bytes of base64 (it decodes to ${key.length}); make one with ` +
          '`openssl rand -base64 32`',
      );
    }
    if (seen.has(id)) throw new ConfigError(`${source} lists key id "${id}" twice`);
    seen.add(id);
    return { id, key };
  });
}

/** The keys `codec.keys` or `codec.keyFile` configure, or undefined when the codec is off. */
export function codecKeysFromConfig(codec: SegflowConfig['codec']): CodecKey[] | undefined {
  if (codec.keys !== undefined && codec.keyFile !== undefined) {
    throw new ConfigError(
      'both codec.keys (SEGFLOW_CODEC_KEYS) and codec.keyFile (SEGFLOW_CODEC_KEY_FILE) are set: keep one',
    );
  }
  if (codec.keyFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(codec.keyFile, 'utf8');
    } catch (err) {
      throw new ConfigError(
        `cannot read the payload codec key file ${codec.keyFile} (codec.keyFile / SEGFLOW_CODEC_KEY_FILE): ` +
          (err as NodeJS.ErrnoException).code,
        { path: codec.keyFile },
      );
    }
    return parseCodecKeys(text, `the key file ${codec.keyFile}`);
  }
  if (codec.keys !== undefined) return parseCodecKeys(codec.keys, 'codec.keys (SEGFLOW_CODEC_KEYS)');
  return undefined;
}

/** Encrypts with the first key, decrypts with any; compresses first when asked and it helps. */
export class AesGcmPayloadCodec implements PayloadCodec {
  private readonly byId: Map<string, Buffer>;
  private readonly current: CodecKey;

  constructor(
    keys: readonly CodecKey[],
    private readonly options: { compress?: boolean } = {},
  ) {
    if (keys.length === 0) throw new ConfigError('the payload codec needs at least one key');
    this.current = keys[0]!;
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  /** The key ids this codec decrypts with (for messages and the codec server's log). */
  get keyIds(): string[] {
    return [...this.byId.keys()];
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => this.encodeOne(p));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => this.decodeOne(p));
  }

  encodeOne(payload: Payload): Payload {
    const plain = Buffer.from(ProtoPayload.encode(payload).finish());
    let compression: PayloadCompression = F.compression.none;
    let body = plain;
    if (this.options.compress && plain.length >= F.compressMinBytes) {
      const packed = deflateSync(plain);
      if (packed.length < plain.length) {
        body = packed;
        compression = F.compression.zlib;
      }
    }
    const { id, key } = this.current;
    const nonce = randomBytes(F.nonceBytes);
    const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: F.tagBytes });
    cipher.setAAD(utf8.encode(payloadAssociatedData(id, compression)));
    const data = Buffer.concat([nonce, cipher.update(body), cipher.final(), cipher.getAuthTag()]);
    return {
      metadata: {
        [F.metadataKeys.encoding]: utf8.encode(F.encoding),
        [F.metadataKeys.keyId]: utf8.encode(id),
        [F.metadataKeys.cipher]: utf8.encode(F.cipher),
        [F.metadataKeys.compression]: utf8.encode(compression),
      },
      data,
    };
  }

  decodeOne(payload: Payload): Payload {
    const meta = payload.metadata ?? {};
    const text = (k: string) => (meta[k] ? fromUtf8.decode(meta[k]) : undefined);
    if (text(F.metadataKeys.encoding) !== F.encoding) return payload;
    const id = text(F.metadataKeys.keyId) ?? '';
    const cipherName = text(F.metadataKeys.cipher) ?? F.cipher;
    const compression = text(F.metadataKeys.compression) ?? F.compression.none;
    if (cipherName !== F.cipher) {
      throw new PayloadCodecError(
        `an encrypted payload uses cipher "${cipherName}"; this codec speaks ${F.cipher}`,
      );
    }
    if (compression !== F.compression.none && compression !== F.compression.zlib) {
      throw new PayloadCodecError(`an encrypted payload names compression "${compression}" (none or zlib)`);
    }
    const key = this.byId.get(id);
    if (!key) {
      throw new PayloadCodecError(
        `a payload was encrypted with key "${id}", which is not among this process's codec keys ` +
          `[${this.keyIds.join(', ')}]: add it to codec.keys / SEGFLOW_CODEC_KEYS (old keys stay listed after a rotation)`,
        { keyId: id },
      );
    }
    const data = Buffer.from(payload.data ?? new Uint8Array());
    if (data.length < F.nonceBytes + F.tagBytes) {
      throw new PayloadCodecError(`an encrypted payload (key "${id}") is ${data.length} bytes: truncated`);
    }
    const nonce = data.subarray(0, F.nonceBytes);
    const tag = data.subarray(data.length - F.tagBytes);
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: F.tagBytes });
    decipher.setAAD(utf8.encode(payloadAssociatedData(id, compression)));
    decipher.setAuthTag(tag);
    let body: Buffer;
    try {
      body = Buffer.concat([
        decipher.update(data.subarray(F.nonceBytes, data.length - F.tagBytes)),
        decipher.final(),
      ]);
    } catch {
      throw new PayloadCodecError(
        `a payload encrypted with key "${id}" failed authentication: the key with that id differs from the one that ` +
          'encrypted it, or the payload was altered',
        { keyId: id },
      );
    }
    const plain = compression === F.compression.zlib ? inflateSync(body) : body;
    return ProtoPayload.decode(plain);
  }
}

/** The codec `config.codec` asks for, or undefined when payloads are not encrypted. */
export function payloadCodecFromConfig(config: SegflowConfig): AesGcmPayloadCodec | undefined {
  const keys = codecKeysFromConfig(config.codec);
  return keys ? new AesGcmPayloadCodec(keys, { compress: config.codec.compress }) : undefined;
}

/** The `dataConverter` of every Client and Worker this process makes: the codec when configured. */
export function dataConverterFor(config: SegflowConfig): { payloadCodecs?: PayloadCodec[] } {
  const codec = payloadCodecFromConfig(config);
  return codec ? { payloadCodecs: [codec] } : {};
}
