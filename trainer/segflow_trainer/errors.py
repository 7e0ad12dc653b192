"""Errors that map onto Temporal ApplicationErrors the way activities/errors.ts does on the TS side:
a stable type (core/contracts/errors.ts), and whether a retry can help. Bad input, configuration
that cannot work and a resource the update does not fit in fail fast, never retried: redoing a
full GPU step again and again gives the same failure each time."""

from __future__ import annotations

import errno
from typing import NoReturn

from temporalio.exceptions import ApplicationError


class BadInputError(ValueError):
    """An input (batch, policy folder, hyperparameter) that cannot be used as given."""

    type = "BadInputError"


class PolicyVersionConflictError(RuntimeError):
    """The output version already exists and was made from other inputs: applying this step again
    would fork the run's history, so the step is refused instead."""

    type = "PolicyVersionConflict"


class ConfigError(ValueError):
    """The trainer's configuration cannot work: S3 credentials or bucket the store refuses, a
    read-only work dir, half-configured Temporal TLS. A person must change it; a retry cannot help."""

    type = "ConfigError"


class ResourceExhaustedError(RuntimeError):
    """The update does not fit the trainer host (GPU/CPU memory, disk): the same update fails the
    same way on a retry, so it needs smaller settings or a bigger host."""

    type = "ResourceExhausted"


class UpdateCancelledError(RuntimeError):
    """The update's activity was cancelled (timed out, or the worker is stopping): raised inside the
    update at its next phase or optimizer step, so a timed-out attempt stops instead of racing its
    retry to the end. Nobody waits for its result; the retry does the step."""

    type = "UpdateCancelled"


TYPED: tuple[type[Exception], ...] = (BadInputError, PolicyVersionConflictError, ConfigError, ResourceExhaustedError)

# botocore ClientError codes that mean the credentials, the bucket or its policy are wrong: the same
# request fails the same way until a person changes them.
S3_CONFIG_CODES = frozenset(
    {
        "AccessDenied",
        "403",
        "Forbidden",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "NoSuchBucket",
        "AllAccessDisabled",
        "AccountProblem",
        "InvalidBucketName",
        "RequestTimeTooSkewed",
    }
)

_MEMORY_ADVICE = (
    "lower the hyperparameters' microBatchTokens (or microBatchSize), turn on gradientCheckpointing, "
    "use dtype bfloat16 or a LoRA update, or shard the update over more GPUs (SEGFLOW_TRAINER_NPROC)"
)


def _chain(err: BaseException):
    """`err`, then its causes and contexts (boto3 raises S3UploadFailedError inside `except ClientError`)."""
    seen: set[int] = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def _is_out_of_memory(err: BaseException) -> str | None:
    if isinstance(err, MemoryError):
        return "CPU"
    try:
        import torch
    except ImportError:  # pragma: no cover - the trainer always has torch
        return None
    if isinstance(err, torch.OutOfMemoryError):  # torch.cuda.OutOfMemoryError is the same class
        return "GPU" if "CUDA" in str(err) or "GPU" in str(err) else "accelerator"
    return None


def _s3_code(err: BaseException) -> tuple[str, str] | None:
    try:
        from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError
    except ImportError:  # pragma: no cover
        return None
    if isinstance(err, (NoCredentialsError, PartialCredentialsError)):
        return "NoCredentials", "a request"
    if isinstance(err, ClientError):
        code = str(err.response.get("Error", {}).get("Code", ""))
        if code in S3_CONFIG_CODES:
            return code, getattr(err, "operation_name", "") or "a request"
    return None


def classify(err: BaseException) -> Exception | None:
    """The typed error `err` stands for (itself when it is one), None for a failure a retry may fix.

    GPU/CPU out of memory and a full disk are ResourceExhausted; S3 access denied, bad credentials,
    a missing bucket and a read-only or forbidden work dir are ConfigError. The message says what
    to change."""
    for e in _chain(err):
        if isinstance(e, TYPED):
            return e
        where = _is_out_of_memory(e)
        if where:
            return ResourceExhaustedError(f"the update ran out of {where} memory ({_short(e)}): {_MEMORY_ADVICE}")
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            what = "no space left on the device" if e.errno == errno.ENOSPC else "the disk quota is used up"
            return ResourceExhaustedError(
                f"{what} writing {e.filename or 'a file'}: free disk on the trainer host or point "
                "SEGFLOW_TRAINER_WORK_DIR at a larger volume (a step needs about twice the model's size there; "
                "SEGFLOW_TRAINER_KEEP_VERSIONS keeps fewer finished versions)"
            )
        if isinstance(e, OSError) and e.errno in (errno.EROFS, errno.EACCES, errno.EPERM) and e.filename:
            why = "is on a read-only file system" if e.errno == errno.EROFS else "is not writable by the trainer"
            return ConfigError(
                f"{e.filename} {why} ({e.strerror}): point SEGFLOW_TRAINER_WORK_DIR at a writable volume"
            )
        s3 = _s3_code(e)
        if s3:
            code, operation = s3
            bucket_advice = (
                "create the bucket or fix SEGFLOW_S3_BUCKET / SEGFLOW_S3_ENDPOINT"
                if code in ("NoSuchBucket", "InvalidBucketName")
                else "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the host's IAM role) and the bucket "
                "policy of SEGFLOW_S3_BUCKET, which must allow the trainer to list, get and put objects"
            )
            return ConfigError(f"S3 refused {operation} ({code}: {_short(e)}): {bucket_advice}")
    return None


def _short(err: BaseException, limit: int = 300) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if len(text) <= limit else text[:limit] + "…"


def to_application_error(err: BaseException) -> BaseException:
    """The ApplicationError Temporal records for `err`, its message scrubbed of secrets (redact.py): typed
    and non-retryable for what classify() recognises, else retryable with `err`'s class name as its type.
    A BaseException that is not an Exception (a cancellation) and Temporal's own failures stay as they are."""
    from temporalio.exceptions import FailureError

    from .redact import redact_text

    if not isinstance(err, Exception) or (isinstance(err, FailureError) and not isinstance(err, ApplicationError)):
        return err
    typed = classify(err)
    if typed is not None:
        return ApplicationError(redact_text(str(typed)), type=getattr(typed, "type"), non_retryable=True)
    if isinstance(err, ApplicationError):
        return ApplicationError(
            redact_text(err.message),
            type=err.type,
            non_retryable=err.non_retryable,
            next_retry_delay=err.next_retry_delay,
        )
    return ApplicationError(redact_text(str(err)) or type(err).__name__, type=type(err).__name__)


def _scrubbed_cause(err: BaseException) -> ApplicationError:
    """A stand-in for `err` as the failure's cause: its class name as type, its message scrubbed, its
    traceback (code locations, no messages) kept."""
    from .redact import redact_text

    cause = ApplicationError(redact_text(str(err)) or type(err).__name__, type=type(err).__name__)
    return cause.with_traceback(err.__traceback__)


def raise_mapped(err: BaseException) -> NoReturn:
    """Raises `err` as an activity failure (to_application_error), caused by a scrubbed stand-in of `err`:
    neither the message nor the cause Temporal records carries a secret `err` echoed (a key in a server's
    answer, credentials in an endpoint URL). Never `raise err from err`: an exception that is its own
    cause makes the SDK's failure conversion recurse without end, and the run would only see "maximum
    recursion depth exceeded" instead of the error."""
    mapped = to_application_error(err)
    if mapped is err:
        raise err
    raise mapped from _scrubbed_cause(err)
