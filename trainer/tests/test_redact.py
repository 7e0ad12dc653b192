"""The trainer scrubs secrets out of what leaves it (redact.py, errors.raise_mapped): the same rules as the
TypeScript side (core/redact.ts, test/unit/core/redact.test.ts), applied to activity failures — message and
cause — and to log records."""

import asyncio
import dataclasses
import io
import logging

import pytest
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from segflow_trainer import worker
from segflow_trainer.errors import BadInputError, raise_mapped
from segflow_trainer.redact import RedactingFilter, redact_text, secret_values
from segflow_trainer.settings import load_settings

KEY = "sk-planted-0123456789abcdef"

CASES = [
    ("could not reach http://admin:hunter2secret@10.0.0.5:8888/search?q=cats&format=json: ECONNREFUSED",
     "could not reach http://***@10.0.0.5:8888/search?q=cats&format=json: ECONNREFUSED"),
    ("https://ghp_tokentokentoken@github.com/x", "https://***@github.com/x"),
    ("GET https://s3.example/b/k.jpg?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIA%2F2026&X-Amz-Signature=ab12cd&X-Amz-SignedHeaders=host",
     "GET https://s3.example/b/k.jpg?X-Amz-Algorithm=AWS4&X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-SignedHeaders=host"),
    ("https://maps.example/api?key=AIzaSyA-123&lang=en", "https://maps.example/api?key=***&lang=en"),
    ("Authorization: Bearer sk-abcdefghijklmnop", "Authorization: Bearer ***"),
    ('{"x-api-key":"serper-0123456789"}', '{"x-api-key":"***"}'),
    ("HTTP 401 from http://127.0.0.1:9/v1/chat/completions", "HTTP 401 from http://127.0.0.1:9/v1/chat/completions"),
    ("s3://segflow/evals/e1/samples/a%2Fb.json", "s3://segflow/evals/e1/samples/a%2Fb.json"),
]


@pytest.mark.parametrize("text, want", CASES)
def test_the_typescript_rules(text, want):
    assert redact_text(text, []) == want


def test_known_values_in_every_form_and_from_the_environment():
    odd = 'p@ss/w"rd+x=1'
    out = redact_text(f"{KEY} {odd} %40 {'p%40ss%2Fw%22rd%2Bx%3D1'} " + '"p@ss/w\\"rd+x=1"', [KEY, odd, "short"])
    assert KEY not in out and odd not in out and "p%40ss%2Fw%22rd%2Bx%3D1" not in out and 'w\\"rd' not in out
    assert redact_text("a short word", ["short"]) == "a short word"
    env = {"AWS_SECRET_ACCESS_KEY": "s3-secret-123456", "SEGFLOW_CODEC_KEYS": "k1:AAAABBBBCCCCDDDD,k2:EEEEFFFFGGGGHHHH"}
    assert {"s3-secret-123456", "AAAABBBBCCCCDDDD", "EEEEFFFFGGGGHHHH"} <= set(secret_values(env))


def as_failure(err: BaseException) -> Failure:
    failure = Failure()
    DataConverter.default.failure_converter.to_failure(err, DataConverter.default.payload_converter, failure)
    return failure


def test_an_activity_failure_and_its_cause_carry_no_secret(monkeypatch, tmp_path):
    monkeypatch.setenv("SEGFLOW_POLICY_API_KEY", KEY)
    url = "http://trainer:pw-planted-42@127.0.0.1:1/bucket"

    def fail(*_args, **_kwargs):
        try:
            raise ConnectionError(f"Could not connect to the endpoint URL: {url}?X-Amz-Signature=abcdef123")
        except ConnectionError as inner:
            raise RuntimeError(f"upload failed, server said: Incorrect API key provided: {KEY}") from inner

    monkeypatch.setattr(worker, "update_policy", fail)
    acts = worker.TrainerActivities(dataclasses.replace(load_settings(), work_dir=str(tmp_path), heartbeat_seconds=0.2))
    with pytest.raises(BaseException) as raised:
        asyncio.run(ActivityEnvironment().run(acts.update_policy, {"uri": "s3://b/x.json"}, {"uri": "s3://b/p/", "version": 0}, {"runId": "r", "step": 0}))
    failure = as_failure(raised.value)
    text = str(failure)
    assert KEY not in text and "pw-planted-42" not in text and "abcdef123" not in text, text
    assert failure.application_failure_info.type == "RuntimeError" and "Incorrect API key provided: ***" in failure.message
    assert failure.cause.application_failure_info.type == "RuntimeError"

    with pytest.raises(ApplicationError) as typed:
        try:
            raise BadInputError(f"the batch at {url} is not JSON")
        except BadInputError as err:
            raise_mapped(err)
    assert typed.value.type == "BadInputError" and typed.value.non_retryable and "pw-planted-42" not in str(as_failure(typed.value))


def test_log_records_are_scrubbed(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3-secret-planted-1")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("test-redact")
    log.addHandler(handler)
    try:
        log.warning("connecting to %s with %s", "http://u:p4ssw0rd-x@h/", "s3-secret-planted-1")
        try:
            raise ValueError("bad key s3-secret-planted-1")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    text = out.getvalue()
    assert "p4ssw0rd-x" not in text and "s3-secret-planted-1" not in text and "***" in text and "ValueError" in text
