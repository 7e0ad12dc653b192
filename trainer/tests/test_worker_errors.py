"""The trainer worker's activity failures as Temporal sees them: an unexpected error reaches the run
with its own type and message (it once became "maximum recursion depth exceeded": the error was
raised as its own cause), bad input is typed and non-retryable, and so are the failures a retry
cannot fix (out of memory, disk full, S3 refusing the credentials or the bucket), with what to do."""

import asyncio
import dataclasses
import errno
import os
import re

import pytest
import torch
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from segflow_trainer import worker
from segflow_trainer.errors import BadInputError
from segflow_trainer.settings import load_settings

from .helpers import LocalDev


def run_update(monkeypatch, tmp_path, error: BaseException) -> BaseException:
    def fail(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(worker, "update_policy", fail)
    acts = worker.TrainerActivities(dataclasses.replace(load_settings(), work_dir=str(tmp_path), heartbeat_seconds=0.2))
    with pytest.raises(BaseException) as raised:
        asyncio.run(ActivityEnvironment().run(acts.update_policy, {"uri": "s3://b/x.json"}, {"uri": "s3://b/p/", "version": 0}, {"runId": "r", "step": 0}))
    return raised.value


def as_failure(err: BaseException) -> Failure:
    failure = Failure()
    DataConverter.default.failure_converter.to_failure(err, DataConverter.default.payload_converter, failure)
    return failure


def test_an_unexpected_error_keeps_its_type_and_message(monkeypatch, tmp_path):
    err = run_update(monkeypatch, tmp_path, TypeError("'NoneType' object is not an iterator"))
    assert isinstance(err, ApplicationError) and err.type == "TypeError" and err.__cause__ is not err
    failure = as_failure(err)
    assert failure.message == "'NoneType' object is not an iterator"
    assert failure.application_failure_info.type == "TypeError"
    assert not failure.application_failure_info.non_retryable


def test_bad_input_is_typed_and_not_retried(monkeypatch, tmp_path):
    err = run_update(monkeypatch, tmp_path, BadInputError("batch b.json is not JSON"))
    assert isinstance(err, ApplicationError) and err.type == "BadInputError" and err.non_retryable
    assert as_failure(err).message == "batch b.json is not JSON"


# What a retry cannot fix: the same update fails the same way on every trainer, so the step fails at
# once with what to change instead of redoing the full GPU step forever.

def s3_error(code: str, operation: str = "PutObject"):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": f"{code} message"}}, operation)


def upload_failed(code: str):
    """What boto3's upload_file raises: S3UploadFailedError, inside `except ClientError` (no __cause__)."""
    from boto3.exceptions import S3UploadFailedError

    try:
        raise s3_error(code)
    except Exception as err:  # noqa: BLE001
        try:
            raise S3UploadFailedError(f"Failed to upload /w/model.safetensors to segflow/policies/r/v1/model.safetensors: {err}")
        except S3UploadFailedError as wrapped:
            return wrapped


def disk(code: int, name: str = "/w/out/r/v1/model.safetensors") -> OSError:
    return OSError(code, os.strerror(code), name)


DETERMINISTIC = [
    (lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "ResourceExhausted", r"ran out of GPU memory .*microBatchTokens.*gradientCheckpointing"),
    (lambda: torch.cuda.OutOfMemoryError("CUDA out of memory."), "ResourceExhausted", r"GPU memory"),
    (lambda: MemoryError(), "ResourceExhausted", r"ran out of CPU memory .*microBatchTokens"),
    (lambda: disk(errno.ENOSPC), "ResourceExhausted", r"no space left on the device writing /w/out/r/v1/model.safetensors: free disk .*SEGFLOW_TRAINER_WORK_DIR"),
    (lambda: disk(errno.EDQUOT), "ResourceExhausted", r"disk quota is used up .*SEGFLOW_TRAINER_WORK_DIR"),
    (lambda: disk(errno.EROFS, "/w/out"), "ConfigError", r"/w/out is on a read-only file system .*SEGFLOW_TRAINER_WORK_DIR"),
    *[
        (lambda code=code: s3_error(code), "ConfigError", rf"S3 refused PutObject \({code}: .*AWS_ACCESS_KEY_ID .*bucket policy")
        for code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch")
    ],
    (lambda: s3_error("NoSuchBucket", "ListObjectsV2"), "ConfigError", r"S3 refused ListObjectsV2 \(NoSuchBucket: .*SEGFLOW_S3_BUCKET"),
    (lambda: upload_failed("AccessDenied"), "ConfigError", r"S3 refused PutObject \(AccessDenied"),
]


@pytest.mark.parametrize("make, kind, message", DETERMINISTIC)
def test_deterministic_failures_are_typed_and_not_retried(monkeypatch, tmp_path, make, kind, message):
    err = run_update(monkeypatch, tmp_path, make())
    assert isinstance(err, ApplicationError) and err.type == kind and err.non_retryable
    assert re.search(message, str(err)), str(err)
    failure = as_failure(err)
    assert failure.application_failure_info.type == kind and failure.application_failure_info.non_retryable


@pytest.mark.parametrize("make", [lambda: s3_error("SlowDown"), lambda: s3_error("InternalError"), lambda: disk(errno.EIO), lambda: ConnectionResetError()])
def test_failures_a_retry_may_fix_stay_retryable(monkeypatch, tmp_path, make):
    err = run_update(monkeypatch, tmp_path, make())
    assert not as_failure(err).application_failure_info.non_retryable


def test_the_error_types_are_the_workflows_non_retryable_ones():
    # workflows/training-step.ts lists them in the trainer's retry policy (core/contracts/errors.ts)
    from segflow_trainer import contracts
    from segflow_trainer.errors import TYPED

    assert {cls.type for cls in TYPED} <= contracts.error_types()


class Refusing:
    """A store whose puts S3 refuses (a bucket policy without s3:PutObject)."""

    def __init__(self, store):
        self.store = store

    def __getattr__(self, name):
        return getattr(self.store, name)

    def put_file(self, *_a, **_k):
        raise s3_error("AccessDenied")

    def put_bytes(self, *_a, **_k):
        raise s3_error("AccessDenied")


def test_a_real_update_that_s3_refuses_or_that_runs_out_of_memory_fails_at_once(tmp_path, monkeypatch):
    dev = LocalDev(tmp_path)
    settings = dataclasses.replace(load_settings(), work_dir=str(tmp_path / "work"), heartbeat_seconds=0.2)
    acts = worker.TrainerActivities(settings)
    hp = {"runId": "denied", "step": 0, "maxLength": 512}
    batch = dev.batch("denied")
    acts.store = Refusing(dev.store)
    with pytest.raises(ApplicationError) as raised:
        asyncio.run(ActivityEnvironment().run(acts.update_policy, batch, dev.v0, hp))
    assert raised.value.type == "ConfigError" and raised.value.non_retryable
    assert "S3 refused PutObject (AccessDenied" in str(raised.value)

    # out of memory in a forward pass of the update
    from segflow_trainer import hf_family

    def oom(*_a, **_k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(hf_family.HfFamily, "log_probs", oom)
    acts.store = dev.store
    with pytest.raises(ApplicationError) as raised:
        asyncio.run(ActivityEnvironment().run(acts.update_policy, dev.batch("oom"), dev.v0, {**hp, "runId": "oom"}))
    assert raised.value.type == "ResourceExhausted" and raised.value.non_retryable
