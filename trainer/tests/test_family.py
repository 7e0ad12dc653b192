"""Policy families (family.py): a policy folder finds its family by config.json's model_type; family
modules outside the trainer load through SEGFLOW_TRAINER_FAMILIES or the entry-point group; a
model_type that no family handles is bad input that names what would fix it."""

import json
import re
import textwrap
from pathlib import Path

import pytest

from segflow_trainer import family
from segflow_trainer.errors import BadInputError
from segflow_trainer.family import FAMILIES_ENV, FamilySource, ModuleFamily, load_family
from segflow_trainer.hf_family import HfFamily
from segflow_trainer.update import LoraSettings, update_policy

from .helpers import Dev

TOY_MODULE = '''
import torch
from segflow_trainer.family import ModuleFamily, register_family


class ToyFamily(ModuleFamily):
    kind = "full"
    base_model = None

    def __init__(self, source):
        self.source = source
        self.model = torch.nn.Linear(2, 2)


register_family("segflow-test-toy", ToyFamily, name="toy")
'''


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch):
    """Each test sees the built-in families only, and leaves no registration behind."""
    monkeypatch.setattr(family, "_registry", list(family._registry))
    monkeypatch.setattr(family, "_loaded_modules", set(family._loaded_modules))
    monkeypatch.delenv(FAMILIES_ENV, raising=False)


def folder_of(tmp: Path, name: str, config: dict | None) -> Path:
    folder = tmp / name
    folder.mkdir()
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def source(folder: Path) -> FamilySource:
    def fetch(uri: str):
        raise AssertionError(f"nothing to fetch: {uri}")

    return FamilySource(folder, "s3://segflow/p/", None, LoraSettings(), fetch, fetch)


def test_an_unknown_model_type_names_the_families_and_the_variable(tmp_path):
    folder = folder_of(tmp_path, "mystery", {"model_type": "segflow-mystery-policy"})
    with pytest.raises(BadInputError) as err:
        load_family(source(folder))
    msg = str(err.value)
    assert "model_type 'segflow-mystery-policy'" in msg and "s3://segflow/p/" in msg
    assert re.search(r"\(registered: [^)]*huggingface\)", msg) and FAMILIES_ENV in msg and "segflow_trainer.families" in msg


def test_a_folder_without_a_model_type_is_bad_input(tmp_path):
    with pytest.raises(BadInputError, match="no config.json model_type.*no registered trainer policy family"):
        load_family(source(folder_of(tmp_path, "empty", None)))


def test_hugging_face_is_the_built_in_default_for_the_model_types_transformers_knows(tmp_path):
    family.load_family_modules()
    gpt2 = folder_of(tmp_path, "gpt2", {"model_type": "gpt2"})
    assert family.family_factory(gpt2, "s3://b/gpt2/").__module__ == "segflow_trainer.hf_family"
    adapter = folder_of(tmp_path, "adapter", None)
    (adapter / "adapter_config.json").write_text("{}")
    assert family.family_factory(adapter, "s3://b/lora/").__module__ == "segflow_trainer.hf_family"
    assert issubclass(HfFamily, ModuleFamily)


def test_a_family_module_named_in_the_environment_registers_itself(tmp_path, monkeypatch):
    (tmp_path / "segflow_toy_family.py").write_text(textwrap.dedent(TOY_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(FAMILIES_ENV, " segflow_toy_family , ")
    folder = folder_of(tmp_path, "toy", {"model_type": "segflow-test-toy"})
    fam = load_family(source(folder))
    assert type(fam).__name__ == "ToyFamily" and fam.source.folder == folder
    assert fam.parameters() and set(fam.weights()) == {"weight", "bias"}
    names = family.registered_families()
    assert "toy" in names and names[-1] == "huggingface"  # the default is asked last


def test_a_family_module_that_does_not_import_is_named(monkeypatch):
    monkeypatch.setenv(FAMILIES_ENV, "no_such_family_module")
    with pytest.raises(BadInputError, match=f"{FAMILIES_ENV} names the policy family module 'no_such_family_module'"):
        family.load_family_modules()


def test_entry_points_of_the_group_are_loaded_once(tmp_path, monkeypatch):
    calls = []

    class EntryPoint:
        value = "toy_plugin:register"

        def load(self):
            return lambda: calls.append(1) or family.register_family("segflow-test-ep", lambda s: s, name="ep")

    monkeypatch.setattr(family, "_entry_points_loaded", False)
    monkeypatch.setattr(family.metadata, "entry_points", lambda group: [EntryPoint()] if group == family.ENTRY_POINT_GROUP else [])
    family.load_family_modules()
    family.load_family_modules()
    assert calls == [1] and "ep" in family.registered_families()
    folder = folder_of(tmp_path, "ep", {"model_type": "segflow-test-ep"})
    assert family.family_factory(folder, "s3://b/ep/")("x") == "x"


def test_update_policy_refuses_a_policy_no_family_handles(tmp_path):
    dev = Dev(tmp_path)
    folder = folder_of(tmp_path, "v0", {"model_type": "segflow-mystery-policy"})
    uri = dev.store.uri_of(f"test/trainer/{dev.run_id}/mystery/")
    dev.store.upload_folder(folder, uri)
    batch = dev.put_batch({"schema": "segflow.batch/1", "runId": dev.run_id, "step": 0, "policyVersion": 0, "trajectories": [
        {"trajectoryId": "t0", "groupId": "g", "advantage": 1.0, "reward": 1.0,
         "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
    ]})
    with pytest.raises(BadInputError, match=f"model_type 'segflow-mystery-policy'.*{FAMILIES_ENV}"):
        update_policy(dev.store, batch, {"uri": uri, "version": 0}, {"runId": dev.run_id, "step": 0}, dev.work_dir)
