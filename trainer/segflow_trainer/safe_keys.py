"""The one guard for S3 keys and local paths the trainer builds from input (run ids, URIs in a batch or
a policy manifest, names an S3 listing returns), with the same rules as the TypeScript side
(core/contracts/safe-key.ts): every `/`-separated segment must be a plain name. Refused: an empty
segment (a leading `/` or `//`: absolute), `.` or `..`, a backslash, a control character, or a
segment that percent-decodes to a `.`/`..` step. A refusal is a BadInputError (never retried)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from .errors import BadInputError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_RULE = 'plain path segments (no "..", no leading or double "/", no backslash or control characters)'


def segment_problem(segment: str) -> str | None:
    """Why `segment` cannot be one segment of a key or path, or None when it can."""
    if segment == "":
        return 'an empty segment (a leading "/" or "//")'
    if segment in (".", ".."):
        return f'a "{segment}" segment'
    if "\\" in segment:
        return "a backslash"
    if _CONTROL.search(segment):
        return "a control character"
    decoded = unquote(segment, errors="replace") if "%" in segment else segment
    if decoded != segment and any(p in (".", "..") for p in re.split(r"[/\\]", decoded)):
        return f'a percent-encoded "." or ".." step ({decoded!r})'
    return None


def key_problem(key: str, *, allow_empty: bool = False) -> str | None:
    """Why `key` is not a safe relative key (a prefix may end in one `/`), or None when it is."""
    if key == "":
        return None if allow_empty else "it is empty"
    for s in (key[:-1] if key.endswith("/") else key).split("/"):
        problem = segment_problem(s)
        if problem:
            return f"it has {problem}"
    return None


def check_key(key: str, what: str = "S3 key", *, allow_empty: bool = False) -> str:
    """`key` itself, or a BadInputError naming `what` and the problem."""
    problem = key_problem(key, allow_empty=allow_empty)
    if problem:
        raise BadInputError(f"unsafe {what} {key!r}: {problem}; keys built from ids and inputs must be {_RULE}")
    return key


def path_under(directory: Path, *parts: str, what: str = "file name") -> Path:
    """`directory/part/…` for parts that came from input (each may hold several `/`-separated segments);
    a BadInputError when a part is absolute, has an unsafe segment, or the result leaves `directory`."""
    for p in parts:
        problem = "it is an absolute path" if p.startswith("/") else key_problem(p)
        if problem:
            raise BadInputError(f"unsafe {what} {p!r}: {problem}; it must be a relative path of {_RULE} inside {directory}")
    root = Path(directory).resolve()
    path = root.joinpath(*parts).resolve()
    if path == root or root not in path.parents:
        raise BadInputError(f"unsafe {what} {'/'.join(parts)!r}: it leaves {directory}")
    return Path(directory).joinpath(*parts)
