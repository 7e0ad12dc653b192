"""The trainer worker's activity failures as Temporal sees them: an unexpected error reaches the run
with its own type and message (it once became "maximum recursion depth exceeded": the error was
raised as its own cause), bad input is typed and non-retryable."""

import asyncio
import dataclasses

import pytest
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from segflow_trainer import worker
from segflow_trainer.errors import BadInputError
from segflow_trainer.settings import load_settings


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
    assert isinstance(err, TypeError) and err.__cause__ is not err
    failure = as_failure(err)
    assert failure.message == "'NoneType' object is not an iterator"
    assert failure.application_failure_info.type == "TypeError"
    assert not failure.application_failure_info.non_retryable


def test_bad_input_is_typed_and_not_retried(monkeypatch, tmp_path):
    err = run_update(monkeypatch, tmp_path, BadInputError("batch b.json is not JSON"))
    assert isinstance(err, ApplicationError) and err.type == "BadInputError" and err.non_retryable
    assert as_failure(err).message == "batch b.json is not JSON"
