"""Errors that map onto Temporal ApplicationErrors the way activities/errors.ts does on the TS side:
a stable type, and whether a retry can help. Bad input fails fast, never retried."""

from __future__ import annotations

from typing import NoReturn

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


def raise_mapped(err: BaseException) -> NoReturn:
    """Raises `err` as an activity failure: a typed, non-retryable ApplicationError for bad input and
    conflicts (caused by `err`), else `err` itself. Never `raise err from err`: an exception that is
    its own cause makes the SDK's failure conversion recurse without end, and the run would only see
    "maximum recursion depth exceeded" instead of the error."""
    mapped = to_application_error(err)
    if mapped is err:
        raise err
    raise mapped from err
