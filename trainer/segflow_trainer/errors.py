"""Errors that map onto Temporal ApplicationErrors the way activities/errors.ts does on the TS side:
a stable type, and whether a retry can help. Bad input fails fast, never retried."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError


class BadInputError(ValueError):
    """An input (batch, policy folder, hyperparameter) that cannot be used as given."""

    type = "BadInputError"


class PolicyVersionConflictError(RuntimeError):
    """The output version already exists and was made from other inputs: applying this step again
    would fork the run's history, so the step is refused instead."""

    type = "PolicyVersionConflict"


def to_application_error(err: BaseException) -> BaseException:
    if isinstance(err, (BadInputError, PolicyVersionConflictError)):
        return ApplicationError(str(err), type=err.type, non_retryable=True)
    return err
