"""The payload codec, Python side (codec.py): AES-256-GCM with optional zlib, key rotation, refusals,
how it is configured, and a real workflow on the dev stack whose history a codec-less client sees only
encrypted. The byte-level cross-check with the TypeScript codec is test/activity/codec/payload-codec.test.ts."""

import asyncio
import base64
import inspect
import json
import os
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.worker import Worker

from segflow_trainer.codec import AesGcmPayloadCodec, CodecKey, PayloadCodecError, parse_codec_keys, wire_format
from segflow_trainer.errors import ConfigError
from segflow_trainer.settings import load_settings

K1, K2 = os.urandom(32), os.urandom(32)
KEYS = f"k2:{base64.b64encode(K2).decode()},k1:{base64.b64encode(K1).decode()}"


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


def test_encrypts_with_the_first_key_and_decrypts_with_any():
    old = AesGcmPayloadCodec([CodecKey("k1", K1)])
    new = AesGcmPayloadCodec(parse_codec_keys(KEYS, "test"))
    p = plain("the red car")
    enc = new.encode_one(p)
    assert enc.metadata["encoding"] == b"binary/encrypted" and enc.metadata["encryption-key-id"] == b"k2"
    assert b"red car" not in enc.data and b"json/plain" not in enc.data
    assert new.decode_one(enc) == p
    assert new.decode_one(old.encode_one(p)) == p  # rotation: the old key still decrypts
    with pytest.raises(PayloadCodecError, match="key 'k2', which is not among this process's codec keys \\['k1'\\]"):
        old.decode_one(enc)
    assert new.encode_one(p).data != enc.data  # a fresh nonce every time


def test_compression_only_where_it_helps_and_always_decoded():
    codec = AesGcmPayloadCodec([CodecKey("k1", K1)], compress=True)
    big, small = plain("segment " * 200), plain("tiny")
    enc_big, enc_small = codec.encode_one(big), codec.encode_one(small)
    assert enc_big.metadata["encryption-compression"] == b"zlib" and len(enc_big.data) < len(big.data) // 4
    assert enc_small.metadata["encryption-compression"] == b"none"
    assert codec.decode_one(enc_big) == big and codec.decode_one(enc_small) == small
    # a codec without compression reads compressed payloads too
    assert AesGcmPayloadCodec([CodecKey("k1", K1)]).decode_one(enc_big) == big


def test_tampering_is_detected_and_unencrypted_payloads_pass_through():
    codec = AesGcmPayloadCodec([CodecKey("k1", K1)], compress=True)
    enc = codec.encode_one(plain("x" * 500))
    flipped = Payload(metadata=dict(enc.metadata), data=enc.data[:-1] + bytes([enc.data[-1] ^ 1]))
    with pytest.raises(PayloadCodecError, match="failed authentication"):
        codec.decode_one(flipped)
    relabelled = Payload(metadata={**enc.metadata, "encryption-compression": b"none"}, data=enc.data)
    with pytest.raises(PayloadCodecError, match="failed authentication"):  # the labels are authenticated
        codec.decode_one(relabelled)
    with pytest.raises(PayloadCodecError, match="truncated"):
        codec.decode_one(Payload(metadata=dict(enc.metadata), data=enc.data[:10]))
    assert codec.decode_one(plain("clear")) == plain("clear")


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "holds no key"),
        ("nokey", "entry 1 is not \"id:base64key\""),
        ("a b:" + base64.b64encode(K1).decode(), "entry 1 is not"),
        ("k:" + base64.b64encode(b"short").decode(), "key 'k' is not 32 bytes of base64"),
        (f"k:{base64.b64encode(K1).decode()},k:{base64.b64encode(K2).decode()}", "lists key id 'k' twice"),
    ],
)
def test_bad_keys_are_named_without_their_material(text, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_codec_keys(text, "SEGFLOW_CODEC_KEYS")
    assert base64.b64encode(K1).decode() not in str(err.value)


def test_the_settings_turn_the_codec_on_for_every_client_and_worker(tmp_path):
    off = load_settings({"HOME": str(tmp_path)}).temporal.connect_kwargs()
    assert "data_converter" not in off
    kw = load_settings({"HOME": str(tmp_path), "SEGFLOW_CODEC_KEYS": KEYS, "SEGFLOW_CODEC_COMPRESS": "true"}).temporal.connect_kwargs()
    inspect.signature(Client.connect).bind(**kw)
    codec = kw["data_converter"].payload_codec
    assert isinstance(codec, AesGcmPayloadCodec) and codec.current.id == "k2" and codec.compress
    key_file = tmp_path / "keys"
    key_file.write_text(KEYS.replace(",", "\n"))
    from_file = load_settings({"HOME": str(tmp_path), "SEGFLOW_CODEC_KEY_FILE": str(key_file)}).temporal
    assert from_file.payload_codec.current.id == "k2"
    assert "payloads encrypted" in from_file.describe() and KEYS not in repr(from_file)
    with pytest.raises(ConfigError, match="both SEGFLOW_CODEC_KEYS and SEGFLOW_CODEC_KEY_FILE"):
        load_settings({"HOME": str(tmp_path), "SEGFLOW_CODEC_KEYS": KEYS, "SEGFLOW_CODEC_KEY_FILE": str(key_file)})


def test_the_wire_format_is_the_exported_one():
    f = wire_format()
    assert (f["encoding"], f["cipher"], f["nonceBytes"], f["tagBytes"], f["keyBytes"]) == ("binary/encrypted", "AES-256-GCM", 12, 16, 32)


@activity.defn(name="codec_echo_activity")
async def codec_echo_activity(text: str) -> str:
    return f"activity saw {text}"


@workflow.defn(name="codec_echo", sandboxed=False)  # a test module: its imports need no sandbox
class CodecEcho:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(
            codec_echo_activity, f"{text} (to the activity)", start_to_close_timeout=timedelta(seconds=30)
        )


def _payloads(node):
    """Every Payload message in a history (walked as proto3 JSON)."""
    if isinstance(node, dict):
        if "data" in node and "metadata" in node and isinstance(node["metadata"], dict):
            yield node
        for k, v in node.items():
            if k != "searchAttributes":  # indexed by the server: never encoded, by design
                yield from _payloads(v)
    elif isinstance(node, list):
        for v in node:
            yield from _payloads(v)


def test_a_workflow_round_trips_encrypted_on_the_dev_stack(tmp_path):
    """The trainer's own connection settings (SEGFLOW_CODEC_KEYS) on a worker and a client of the dev stack:
    the workflow completes, and a client without the codec reads a history of encrypted payloads only."""
    env = {**os.environ, "HOME": str(tmp_path), "SEGFLOW_CODEC_KEYS": KEYS, "SEGFLOW_CODEC_COMPRESS": "true"}
    settings = load_settings(env)
    marker = f"secret-marker-{uuid.uuid4().hex}"

    async def run() -> tuple[str, list[dict]]:
        client = await Client.connect(**settings.temporal.connect_kwargs())
        queue = f"pytest-codec-{uuid.uuid4().hex[:8]}"
        async with Worker(client, task_queue=queue, workflows=[CodecEcho], activities=[codec_echo_activity]):
            wid = f"pytest-codec-{uuid.uuid4().hex[:8]}"
            result = await client.execute_workflow(CodecEcho.run, marker * 20, id=wid, task_queue=queue)
        plain_kw = {k: v for k, v in settings.temporal.connect_kwargs().items() if k != "data_converter"}
        bare = await Client.connect(**plain_kw)
        history = await bare.get_workflow_handle(wid).fetch_history()
        return result, json.loads(history.to_json())["events"]

    result, events = asyncio.run(run())
    assert result == f"activity saw {marker * 20} (to the activity)"
    text = json.dumps(events)
    assert marker not in text and base64.b64encode(marker.encode()).decode()[:16] not in text
    found = list(_payloads(events))
    assert len(found) >= 4  # workflow input and result, activity input and result
    for p in found:
        assert base64.b64decode(p["metadata"]["encoding"]) == b"binary/encrypted", p["metadata"]
