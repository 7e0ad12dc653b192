"""Scrubbing secrets out of the trainer's error texts and log lines, with the TypeScript side's rules
(core/redact.ts; the parameter and header names come from the exported `schemas/redaction.json`):
known secret values of this process's environment (the S3 secret key, the Temporal API key, codec keys,
tracker tokens …), the user-info of URLs, credential query parameters (`key=`, `token=`,
`X-Amz-Signature=` …), bearer tokens and key headers become `***`. Activity failures are scrubbed where
errors.raise_mapped maps them; log records by RedactingFilter (installed by the worker)."""

from __future__ import annotations

import json
import logging
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping
from urllib.parse import quote

REDACTED = "***"
_SCHEMA = Path(__file__).parent / "schemas" / "redaction.json"

# Environment variables whose values are secrets wherever the trainer runs.
SECRET_ENV = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SESSION_TOKEN",
    "TEMPORAL_API_KEY",
    "TEMPORAL_TLS_CLIENT_KEY_DATA",
    "SEGFLOW_POLICY_API_KEY",
    "SERPER_API_KEY",
    "SEGFLOW_E5_API_KEY",
    "SEGFLOW_CODEC_SERVER_AUTH_TOKEN",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
)


@lru_cache(maxsize=None)
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str], re.Pattern[str], int]:
    if not _SCHEMA.is_file():
        raise FileNotFoundError(f"{_SCHEMA} is missing: run `npm run build` in the checkout (it exports core/redact.ts)")
    p = json.loads(_SCHEMA.read_text())
    params = "|".join(re.escape(x) for x in p["queryParams"])
    headers = "|".join(re.escape(x) for x in p["headers"])
    return (
        re.compile(r"\b([a-z][a-z0-9+.-]*://)[^\s/?#@\"'<>\\]+@", re.I),
        re.compile(rf"([?&;])({params})=(?!\*\*\*)[^&#\s\"'<>;\\]*", re.I),
        re.compile(rf"\b({headers})([\"']?\s*[:=]\s*[\"']?)(?!(?:Bearer|Basic)\s)(?!\*\*\*)[^\s\"',;}}]{{8,}}", re.I),
        re.compile(r"\b(Bearer|Basic)\s+(?!\*\*\*)[A-Za-z0-9._~+/=-]{8,}"),
        int(p["minSecretLength"]),
    )


def secret_values(env: Mapping[str, str]) -> list[str]:
    """This environment's secret values: SECRET_ENV, and each key of SEGFLOW_CODEC_KEYS by itself."""
    out = [env[name] for name in SECRET_ENV if env.get(name)]
    for entry in re.split(r"[\s,]+", env.get("SEGFLOW_CODEC_KEYS", "")):
        if entry:
            out += [entry, entry.partition(":")[2]]
    return [v for v in out if v]


def redact_text(text: str, secrets: Iterable[str] | None = None) -> str:
    """`text` with known secret values (as written, JSON-escaped or percent-encoded) and credential-shaped
    parts replaced by `***`. `secrets` defaults to this process's environment."""
    userinfo, query, header, scheme, min_len = _patterns()
    values = secret_values(os.environ) if secrets is None else list(secrets)
    forms = {f for s in values if len(s) >= min_len for f in (s, json.dumps(s)[1:-1], quote(s, safe=""))}
    for s in sorted(forms, key=len, reverse=True):
        text = text.replace(s, REDACTED)
    text = userinfo.sub(rf"\1{REDACTED}@", text)
    text = query.sub(rf"\1\2={REDACTED}", text)
    text = header.sub(rf"\1\2{REDACTED}", text)
    return scheme.sub(rf"\1 {REDACTED}", text)


class RedactingFilter(logging.Filter):
    """Scrubs each record's message (arguments applied) and exception text before any handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_text(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def install_log_redaction() -> None:
    """Every handler of the root logger scrubs what it writes (call after logging is configured)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
