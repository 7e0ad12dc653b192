/**
 * The wire format of segflow's optional Temporal payload codec, defined once: the TypeScript codec
 * (activities/runtime/payload-codec.ts) and the Python trainer's (segflow_trainer/codec.py, which
 * reads these values from the exported `schemas/payload-codec.json`) both follow it, so a payload
 * one side encodes the other decodes. docs/payload-codec.md describes it for anyone writing a third.
 *
 * An encoded payload:
 * - metadata `encoding` = `binary/encrypted`; `encryption-key-id` = the id of the key that
 *   encrypted it (keys rotate: the newest encrypts, every listed key decrypts);
 *   `encryption-cipher` = `AES-256-GCM`; `encryption-compression` = `none` or `zlib`.
 * - data = nonce (12 random bytes) ‖ ciphertext ‖ GCM tag (16 bytes). The plaintext is the
 *   original Payload message in protobuf binary form (`temporal.api.common.v1.Payload`, its
 *   metadata included), zlib-compressed (RFC 1950) first when the compression says so.
 * - associated data (authenticated, not sent) = UTF-8 of
 *   `segflow-payload-codec/1\n<key id>\n<compression>`: a payload cannot be relabelled with another
 *   key id or compression without failing authentication.
 * A payload without `encoding: binary/encrypted` is passed through unchanged when decoding.
 */

export const PayloadCodecFormat = {
  encoding: 'binary/encrypted',
  metadataKeys: {
    encoding: 'encoding',
    keyId: 'encryption-key-id',
    cipher: 'encryption-cipher',
    compression: 'encryption-compression',
  },
  cipher: 'AES-256-GCM',
  keyBytes: 32,
  nonceBytes: 12,
  tagBytes: 16,
  compression: { none: 'none', zlib: 'zlib' },
  /** Plaintexts shorter than this are never compressed (zlib's header would outweigh the gain). */
  compressMinBytes: 256,
  associatedDataPrefix: 'segflow-payload-codec/1',
  /** Key ids: a safe id (letters, digits, ".", "_", "-"), at most this long. */
  keyIdMaxLength: 64,
} as const;

export type PayloadCompression =
  (typeof PayloadCodecFormat.compression)[keyof typeof PayloadCodecFormat.compression];

/** The associated data of one encrypted payload (see the format above). */
export function payloadAssociatedData(keyId: string, compression: PayloadCompression): string {
  return `${PayloadCodecFormat.associatedDataPrefix}\n${keyId}\n${compression}`;
}
