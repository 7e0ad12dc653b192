"""The optional Temporal payload codec, Python side: AES-256-GCM encryption with optional zlib compression,
in the wire format defined once in core/contracts/payload-codec.ts (exported to `schemas/payload-codec.json`,
read here), so payloads the TypeScript workers and clients encrypt decode here and the other way round.

Configured like the TypeScript side: SEGFLOW_CODEC_KEYS (`id:base64key` entries, commas or new lines; the
first encrypts, every one decrypts) or SEGFLOW_CODEC_KEY_FILE (a file of the same text), and
SEGFLOW_CODEC_COMPRESS=true. Unset, payloads are not encrypted.

    python -m segflow_trainer.codec encode|decode < payloads.json

reads `{"payloads": [...]}` in the Temporal codec-server JSON form (proto3 JSON: metadata values and data
base64) on stdin and writes the result on stdout, with the keys of the environment: a cross-check of the two
implementations (test/activity/codec/payload-codec.test.ts) and a way to read an encrypted payload by hand."""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import sys
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from .errors import ConfigError

_SCHEMA = Path(__file__).parent / "schemas" / "payload-codec.json"


@lru_cache(maxsize=None)
def wire_format() -> dict:
    """The format constants shared with the TypeScript side (core/contracts/payload-codec.ts)."""
    if not _SCHEMA.is_file():
        raise FileNotFoundError(f"{_SCHEMA} is missing: run `npm run build` in the checkout (it exports core/contracts)")
    return json.loads(_SCHEMA.read_text())


def associated_data(key_id: str, compression: str) -> bytes:
    return f"{wire_format()['associatedDataPrefix']}\n{key_id}\n{compression}".encode()


class PayloadCodecError(ValueError):
    """A payload this process cannot decode (unknown key, tampered or truncated data)."""

    type = "PayloadCodecError"


@dataclass(frozen=True)
class CodecKey:
    id: str
    key: bytes = field(repr=False)


def parse_codec_keys(text: str, source: str) -> list[CodecKey]:
    """`id:base64key` entries separated by commas or white space. Errors name the entry, never its key."""
    f = wire_format()
    entries = [e for e in re.split(r"[\s,]+", text) if e]
    if not entries:
        raise ConfigError(f"{source} holds no key: expected \"id:base64key\" entries (openssl rand -base64 32)")
    keys: list[CodecKey] = []
    for i, entry in enumerate(entries, 1):
        key_id, sep, material = entry.partition(":")
        if not sep or not re.fullmatch(rf"[A-Za-z0-9._-]{{1,{f['keyIdMaxLength']}}}", key_id):
            raise ConfigError(
                f"{source} entry {i} is not \"id:base64key\" with an id of 1-{f['keyIdMaxLength']} letters, digits, "
                '".", "_" or "-"'
            )
        try:
            key = base64.b64decode(material, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != f["keyBytes"]:
            raise ConfigError(
                f"{source} key {key_id!r} is not {f['keyBytes']} bytes of base64; make one with `openssl rand -base64 32`"
            )
        if any(k.id == key_id for k in keys):
            raise ConfigError(f"{source} lists key id {key_id!r} twice")
        keys.append(CodecKey(key_id, key))
    return keys


def codec_keys_from_env(env: Mapping[str, str]) -> list[CodecKey] | None:
    """The keys SEGFLOW_CODEC_KEYS or SEGFLOW_CODEC_KEY_FILE configure, or None when the codec is off."""
    text, path = env.get("SEGFLOW_CODEC_KEYS"), env.get("SEGFLOW_CODEC_KEY_FILE")
    if text and path:
        raise ConfigError("both SEGFLOW_CODEC_KEYS and SEGFLOW_CODEC_KEY_FILE are set: keep one")
    if path:
        try:
            text = Path(path).read_text()
        except OSError as err:
            raise ConfigError(f"cannot read the payload codec key file {path} (SEGFLOW_CODEC_KEY_FILE): {err.strerror}") from err
        return parse_codec_keys(text, f"the key file {path}")
    if text:
        return parse_codec_keys(text, "SEGFLOW_CODEC_KEYS")
    return None


class AesGcmPayloadCodec(PayloadCodec):
    """Encrypts with the first key, decrypts with any; compresses first when asked and it helps."""

    def __init__(self, keys: Sequence[CodecKey], compress: bool = False):
        if not keys:
            raise ConfigError("the payload codec needs at least one key")
        self.current = keys[0]
        self.by_id = {k.id: AESGCM(k.key) for k in keys}
        self.compress = compress

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encode_one(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decode_one(p) for p in payloads]

    def encode_one(self, payload: Payload) -> Payload:
        f = wire_format()
        plain = payload.SerializeToString()
        compression, body = f["compression"]["none"], plain
        if self.compress and len(plain) >= f["compressMinBytes"]:
            packed = zlib.compress(plain)
            if len(packed) < len(plain):
                compression, body = f["compression"]["zlib"], packed
        key_id = self.current.id
        nonce = os.urandom(f["nonceBytes"])
        sealed = self.by_id[key_id].encrypt(nonce, body, associated_data(key_id, compression))  # ciphertext ‖ tag
        m = f["metadataKeys"]
        return Payload(
            metadata={
                m["encoding"]: f["encoding"].encode(),
                m["keyId"]: key_id.encode(),
                m["cipher"]: f["cipher"].encode(),
                m["compression"]: compression.encode(),
            },
            data=nonce + sealed,
        )

    def decode_one(self, payload: Payload) -> Payload:
        f = wire_format()
        m = f["metadataKeys"]
        meta = payload.metadata
        if meta.get(m["encoding"], b"").decode() != f["encoding"]:
            return payload
        key_id = meta.get(m["keyId"], b"").decode()
        cipher = meta.get(m["cipher"], f["cipher"].encode()).decode()
        compression = meta.get(m["compression"], f["compression"]["none"].encode()).decode()
        if cipher != f["cipher"]:
            raise PayloadCodecError(f"an encrypted payload uses cipher {cipher!r}; this codec speaks {f['cipher']}")
        if compression not in f["compression"].values():
            raise PayloadCodecError(f"an encrypted payload names compression {compression!r} (none or zlib)")
        aes = self.by_id.get(key_id)
        if aes is None:
            raise PayloadCodecError(
                f"a payload was encrypted with key {key_id!r}, which is not among this process's codec keys "
                f"{sorted(self.by_id)}: add it to SEGFLOW_CODEC_KEYS (old keys stay listed after a rotation)"
            )
        data = payload.data
        if len(data) < f["nonceBytes"] + f["tagBytes"]:
            raise PayloadCodecError(f"an encrypted payload (key {key_id!r}) is {len(data)} bytes: truncated")
        try:
            body = aes.decrypt(data[: f["nonceBytes"]], data[f["nonceBytes"] :], associated_data(key_id, compression))
        except InvalidTag as err:
            raise PayloadCodecError(
                f"a payload encrypted with key {key_id!r} failed authentication: the key with that id differs from the "
                "one that encrypted it, or the payload was altered"
            ) from err
        plain = zlib.decompress(body) if compression == f["compression"]["zlib"] else body
        out = Payload()
        out.ParseFromString(plain)
        return out


def payload_codec_from_env(env: Mapping[str, str]) -> AesGcmPayloadCodec | None:
    keys = codec_keys_from_env(env)
    if keys is None:
        return None
    compress = env.get("SEGFLOW_CODEC_COMPRESS", "false").strip().lower()
    if compress not in ("true", "false", "1", "0"):
        raise ConfigError(f"SEGFLOW_CODEC_COMPRESS={env['SEGFLOW_CODEC_COMPRESS']!r}: expected true or false")
    return AesGcmPayloadCodec(keys, compress=compress in ("true", "1"))


def _from_json(p: dict) -> Payload:
    return Payload(
        metadata={k: base64.b64decode(v) for k, v in (p.get("metadata") or {}).items()},
        data=base64.b64decode(p.get("data") or ""),
    )


def _to_json(p: Payload) -> dict:
    return {
        "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
        "data": base64.b64encode(p.data).decode(),
    }


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("encode", "decode"):
        print("usage: python -m segflow_trainer.codec encode|decode < {\"payloads\": [...]}", file=sys.stderr)
        return 2
    codec = payload_codec_from_env(os.environ)
    if codec is None:
        print("SEGFLOW_CODEC_KEYS or SEGFLOW_CODEC_KEY_FILE must be set", file=sys.stderr)
        return 2
    doc = json.load(sys.stdin)
    step = codec.encode_one if argv[0] == "encode" else codec.decode_one
    json.dump({"payloads": [_to_json(step(_from_json(p))) for p in doc["payloads"]]}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
