"""The records the trainer shares with the TypeScript side, checked against one definition.

Every record that crosses the TS ↔ Python boundary is defined once, as a zod schema in
core/contracts/ (TypeScript). `npm run build` exports those as JSON Schema (draft 2020-12) into
`schemas/` next to this file, with `keys.json` holding the shared S3 key templates and failure
types. The trainer validates what it reads (the batch, the hyperparameters, the policy ref) and what
it writes (the update result, the version manifest) against those files, and
trainer/tests/test_contracts.py fails when a dataclass here no longer has the fields its schema
lists — so a field added on the TypeScript side fails the trainer's tests until the trainer reads it.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields, is_dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from .errors import BadInputError

SCHEMA_DIR = Path(__file__).parent / "schemas"


@lru_cache(maxsize=None)
def schema(name: str) -> dict[str, Any]:
    """The exported JSON Schema `name` (batch, hyperparameters, policy-ref, update-result, policy-manifest)."""
    path = SCHEMA_DIR / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `npm run build` in the checkout (it exports core/contracts)")
    return json.loads(path.read_text())


@lru_cache(maxsize=None)
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(schema(name))


def _where(err: ValidationError) -> str:
    return ".".join(str(p) for p in err.absolute_path) or "(root)"


def problems(name: str, doc: Any) -> list[str]:
    """Every way `doc` breaks the contract, as `path: what is wrong` (empty when it holds)."""
    errors = sorted(_validator(name).iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{_where(e)}: {e.message}" for e in errors]


def validate(name: str, doc: Any, what: str) -> None:
    """Raises BadInputError naming `what` and every problem (at most 10) when `doc` breaks contract `name`."""
    found = problems(name, doc)
    if found:
        more = f" (and {len(found) - 10} more)" if len(found) > 10 else ""
        raise BadInputError(f"{what} does not match the {name} contract: {'; '.join(found[:10])}{more}")


@lru_cache(maxsize=None)
def _part_validator(name: str, props: tuple[str, ...]) -> Draft202012Validator:
    whole = schema(name)
    part = {
        "type": "object",
        "properties": {p: whole["properties"][p] for p in props},
        "required": [p for p in props if p in whole.get("required", [])],
    }
    if "$defs" in whole:
        part["$defs"] = whole["$defs"]
    return Draft202012Validator(part)


def validate_part(name: str, doc: Any, props: tuple[str, ...], what: str) -> None:
    """As validate, for the properties `props` of contract `name` alone (other fields may be absent,
    unknown or of an older version): what a reader needs of a record written by an older writer."""
    errors = sorted(_part_validator(name, props).iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        found = [f"{_where(e)}: {e.message}" for e in errors]
        raise BadInputError(f"{what} does not match the {name} contract: {'; '.join(found[:10])}")


@lru_cache(maxsize=None)
def _keys() -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / "keys.json").read_text())


def key(template: str, **values: Any) -> str:
    """An S3 key from the shared template `template` (core/contracts/keys.ts `KeyTemplates`)."""
    return _keys()["keyTemplates"][template].format(**values)


def error_types() -> set[str]:
    """The failure types the TypeScript side knows (core/contracts/errors.ts)."""
    return set(_keys()["errorTypes"].values())


def snake(name: str) -> str:
    """camelCase → snake_case (`learningRate` → `learning_rate`)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def field_mismatches(name: str, cls: type, *, pointer: str = "", ignore: frozenset[str] = frozenset()) -> list[str]:
    """Schema properties (at JSON pointer `pointer` of schema `name`) without a field of dataclass `cls`
    (by snake_case name), and fields of `cls` without a property; `ignore` lists properties the
    schema checks on its own (a constant `schema` tag)."""
    assert is_dataclass(cls)
    node: Any = schema(name)
    for part in [p for p in pointer.split("/") if p]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    props = {snake(p): p for p in node.get("properties", {}) if p not in ignore}
    names = {f.name for f in fields(cls)}
    out = [f"{name}{pointer}: property {props[f]!r} has no field {f!r} in {cls.__name__}" for f in sorted(set(props) - names)]
    out += [f"{name}{pointer}: field {f!r} of {cls.__name__} is not in the schema" for f in sorted(names - set(props))]
    return out
