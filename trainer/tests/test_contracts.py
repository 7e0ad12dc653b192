"""The trainer follows the contracts exported from core/contracts (TypeScript): the dataclasses it
parses into have exactly the fields the JSON Schemas list, so a field added on the TypeScript side
fails here until the trainer reads it; and the validation messages name the field."""

import copy

import pytest

from segflow_trainer import contracts
from segflow_trainer.batch import Batch, BatchTrajectory
from segflow_trainer.contracts import field_mismatches, problems, validate
from segflow_trainer.errors import BadInputError, PolicyVersionConflictError
from segflow_trainer.update import Hyperparameters, LoraSettings


def test_the_dataclasses_have_the_fields_the_exported_schemas_list():
    found = (
        field_mismatches("hyperparameters", Hyperparameters)
        + field_mismatches("hyperparameters", LoraSettings, pointer="/properties/lora/anyOf/0")
        + field_mismatches("batch", Batch, ignore=frozenset({"schema"}))
        + field_mismatches("batch", BatchTrajectory, pointer="/properties/trajectories/items")
    )
    assert found == []


def test_a_field_added_on_the_typescript_side_is_reported_until_the_trainer_follows(monkeypatch):
    # What `npm run build` exports after someone adds `entropyCoef` to trainerHyperparametersSchema.
    changed = copy.deepcopy(contracts.schema("hyperparameters"))
    changed["properties"]["entropyCoef"] = {"type": "number", "minimum": 0}
    monkeypatch.setattr(contracts, "schema", lambda name: changed if name == "hyperparameters" else contracts.schema(name))
    assert field_mismatches("hyperparameters", Hyperparameters) == [
        "hyperparameters: property 'entropyCoef' has no field 'entropy_coef' in Hyperparameters"
    ]


def test_validation_names_the_field_and_the_rule():
    assert problems("hyperparameters", {"runId": "r", "step": 0}) == []
    with pytest.raises(BadInputError, match=r"hyperparameters does not match the hyperparameters contract: step: -1 is less than the minimum of 0"):
        validate("hyperparameters", {"runId": "r", "step": -1}, "hyperparameters")
    assert problems("hyperparameters", {"runId": "r", "step": 0, "lr": 1}) == [
        "(root): Additional properties are not allowed ('lr' was unexpected)"
    ]
    assert problems("policy-ref", {"uri": "s3://b/p/v0/", "version": 0}) == []
    assert problems("policy-ref", {"uri": "/tmp/p", "version": 0})[0].startswith("uri: ")


def test_shared_key_templates_and_failure_types():
    assert contracts.key("policyVersion", runId="r1", version=3) == "policies/r1/v3/"
    assert contracts.key("trainerState", runId="r1", version=3) == "runs/r1/trainer/v3/"
    assert contracts.key("policyAttempt", runId="r1", version=3, attempt="2-ab") == "policies/r1/v3/attempts/2-ab/"
    assert contracts.key("trainerStateAttempt", runId="r1", version=3, attempt="2-ab") == "runs/r1/trainer/v3/attempts/2-ab/"
    assert {BadInputError.type, PolicyVersionConflictError.type} <= contracts.error_types()


def test_a_reader_checks_the_manifest_fields_it_uses_and_no_others():
    files = {"model.safetensors": {"sha256": "a", "bytes": 1}}
    # an older manifest: other fields absent or of another shape, filesDir absent
    contracts.validate_part("policy-manifest", {"files": files, "metrics": "old"}, ("files", "filesDir"), "m")
    contracts.validate_part("policy-manifest", {"files": files, "filesDir": "attempts/2-ab/"}, ("files", "filesDir"), "m")
    with pytest.raises(BadInputError, match="filesDir: '../x/' does not match"):
        contracts.validate_part("policy-manifest", {"files": files, "filesDir": "../x/"}, ("files", "filesDir"), "m")
    with pytest.raises(BadInputError, match="does not match"):
        contracts.validate_part("policy-manifest", {"files": {"../../x": files["model.safetensors"]}}, ("files",), "m")
    with pytest.raises(BadInputError, match="'files' is a required property"):
        contracts.validate_part("policy-manifest", {}, ("files", "filesDir"), "m")
