"""The trainer's guard for keys and paths built from input (safe_keys.py), with the TypeScript side's
rules (core/contracts/safe-key.ts): hostile ids and object names are refused, never written."""

from pathlib import Path

import pytest

from segflow_trainer.errors import BadInputError
from segflow_trainer.local_store import LocalStore
from segflow_trainer.safe_keys import check_key, key_problem, path_under, segment_problem
from segflow_trainer.settings import S3Settings
from segflow_trainer.store import Store

HOSTILE = ["../x", "a/../../b", "..", ".", "/etc/passwd", "a//b", "", "a\\..\\b", "a\x00b", "line\nbreak", "del\x7f",
           "%2e%2e", "%2e%2e%2fx", "..%2f..%2fetc", "%2E%2E%5Cx"]


@pytest.mark.parametrize("bad", HOSTILE)
def test_hostile_parts_are_refused(bad: str, tmp_path: Path) -> None:
    assert key_problem(f"runs/{bad}/x") is not None
    with pytest.raises(BadInputError, match="unsafe"):
        check_key(f"runs/{bad}/x")
    with pytest.raises(BadInputError, match="unsafe run id"):
        path_under(tmp_path, bad, what="run id")


def test_safe_names_are_kept(tmp_path: Path) -> None:
    assert check_key("policies/r1/v2/") == "policies/r1/v2/"
    assert check_key("evals/e.1/samples/a%2Fb%20c.json")  # percent signs that are no step stay literal
    assert segment_problem("v1..2") is None and segment_problem("..hidden") is None
    assert path_under(tmp_path, "r1", "v3.state") == tmp_path / "r1" / "v3.state"
    assert path_under(tmp_path, "adapter/model.safetensors") == tmp_path / "adapter" / "model.safetensors"


def test_the_store_refuses_unsafe_keys_and_uris_before_any_request() -> None:
    store = Store(S3Settings("http://127.0.0.1:1", "us-east-1", "segflow", "", "k", "s", True))
    for bad in ["policies/../../x", "s3://segflow/policies/../x/", "s3://segflow//abs", "runs/a\x00/b"]:
        with pytest.raises(BadInputError, match="unsafe"):
            store.key_of(bad)
    assert store.key_of("s3://segflow/policies/r1/v1/") == "policies/r1/v1/"


def test_a_listed_object_name_that_climbs_out_is_never_written(tmp_path: Path) -> None:
    root = tmp_path / "bucket"
    (root / "policies" / "r1" / "v1").mkdir(parents=True)
    (root / "policies" / "r1" / "v1" / "ok.json").write_text("{}")
    store = LocalStore(root)
    dest = tmp_path / "dest"
    assert store.download_prefix("s3://segflow/policies/r1/v1/", dest) == ["ok.json"]

    class Listing(LocalStore):
        def list(self, prefix_key_or_uri: str):  # a bucket whose listing names a key with "..", as a hostile server could
            yield from super().list(prefix_key_or_uri)
            yield "policies/r1/v1/../../../../escaped.txt"

    with pytest.raises(BadInputError, match="unsafe object name"):
        Listing(root).download_prefix("s3://segflow/policies/r1/v1/", tmp_path / "dest2")
    assert not (tmp_path / "escaped.txt").exists()
