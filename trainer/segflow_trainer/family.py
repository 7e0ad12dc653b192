"""Policy families: what update.py needs from a kind of model, and how a policy folder finds its family.

The trainer's core (update.py) is model-agnostic: it tokenises a batch, takes log-probs, steps an
optimizer over `parameters()` and saves a version, all through a `PolicyFamily`. A family module
registers a factory for the folders it handles (`register_family`), keyed by the `model_type` of
the folder's config.json or by a predicate. The Hugging Face family (hf_family.py) is built in and
registered here as the default: it takes the model types transformers knows and peft adapter folders.

Families that live outside the trainer are plugins: modules named in the environment variable
`SEGFLOW_TRAINER_FAMILIES` (comma-separated importable module names; the module registers itself on
import) and entry points of the group `segflow_trainer.families` of installed distributions. The
worker loads them at start and update.py's loader loads them before each lookup (once per name).
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, Union, runtime_checkable

import torch

from .batch import BatchTrajectory
from .errors import BadInputError

FAMILIES_ENV = "SEGFLOW_TRAINER_FAMILIES"
ENTRY_POINT_GROUP = "segflow_trainer.families"
BUILTIN_FAMILIES = (f"{__package__}.hf_family",)


class TrainItem(Protocol):
    """One tokenised trajectory, in whatever shape its family needs."""

    truncated: bool


@runtime_checkable
class PolicyFamily(Protocol):
    """A loaded policy version that update.py can train. Optional: `sequence_length(item) -> int`,
    the item's row length in a forward pass (see `sequence_length` below; token-budget micro-batches)."""

    kind: str  # "full" | "lora": what a saved version holds
    base_model: str | None  # the base model's S3 prefix of a LoRA version, else None

    def tokenize(self, t: BatchTrajectory, max_length: int) -> TrainItem: ...

    def width(self, item: Any) -> int:
        """Positions of `log_probs` that belong to the item (its row may be padded beyond)."""
        ...

    def policy_tokens(self, item: Any) -> int:
        """How many of the item's tokens the policy generated (the token-mean's denominator)."""
        ...

    def log_probs(
        self, items: list[Any], with_entropy: bool = False, temperature: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(log-probs [B, T], loss mask [B, T], entropy [B, T] | None) at the sampling temperature."""
        ...

    def reference_log_probs(
        self, items: list[Any], reference_folder: Callable[[], Path], temperature: float = 1.0
    ) -> torch.Tensor:
        """Log-probs [B, T] under the run's reference policy (`reference_folder()` downloads it)."""
        ...

    def parameters(self) -> list[torch.nn.Parameter]: ...

    def train(self) -> None: ...

    def eval(self) -> None: ...

    def weights(self) -> dict[str, torch.Tensor]:
        """The tensors a version is made of (hashed into the manifest's weightsSha256)."""
        ...

    def save(self, out_dir: Path) -> None: ...


class ModuleFamily:
    """The methods every family over one trainable `torch.nn.Module` (`self.model`) shares."""

    model: torch.nn.Module

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def train(self) -> None:
        self.model.train()

    def eval(self) -> None:
        self.model.eval()

    def weights(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()


def sequence_length(family: Any, item: Any) -> int:
    """The tokens `item` puts through the model: its row's length in a padded [B, T] forward pass
    (what a token-budget micro-batch counts, update.py). A family says so with an optional
    `sequence_length(item)` method; without one, `width(item) + 1` (a causal LM's log-prob positions
    are its tokens less one)."""
    own = getattr(family, "sequence_length", None)
    return int(own(item)) if callable(own) else int(family.width(item)) + 1


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class ModelOptions:
    """How the step wants the model loaded and run (update.Hyperparameters `dtype`,
    `gradientCheckpointing`); a family that cannot honour a non-default one refuses it
    (BadInputError) rather than ignore it."""

    dtype: str = "float32"  # "float32" | "bfloat16": the dtype the policy and its reference load in
    gradient_checkpointing: bool = False  # recompute activations in the backward pass

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def is_default(self) -> bool:
        return self == ModelOptions()


@dataclass(frozen=True)
class FamilySource:
    """What a family factory gets: the downloaded version and the means to fetch what it refers to."""

    folder: Path  # the version's files, downloaded
    uri: str  # its S3 prefix
    manifest: dict | None  # its segflow-policy.json (None for a run's version 0)
    lora: Any  # update.LoraSettings of this step (rank 0: no fresh adapter)
    fetch_folder: Callable[[str], Path]  # another policy folder by URI (e.g. a LoRA base model)
    fetch_bytes: Callable[[str], bytes]  # an S3 object by URI (e.g. a trajectory image)
    options: ModelOptions = ModelOptions()  # dtype and gradient checkpointing of this step


Factory = Callable[[FamilySource], PolicyFamily]
Matcher = Union[str, Callable[[Path, Union[str, None]], bool]]


@dataclass(frozen=True)
class _Registration:
    name: str
    matcher: Matcher
    factory: Factory

    def handles(self, folder: Path, model_type: str | None) -> bool:
        if isinstance(self.matcher, str):
            return model_type == self.matcher
        return bool(self.matcher(folder, model_type))


_registry: list[_Registration] = []
_default: _Registration | None = None
_loaded_modules: set[str] = set()
_entry_points_loaded = False


def register_family(matcher: Matcher, factory: Factory, *, name: str | None = None, default: bool = False) -> None:
    """Registers `factory` for policy folders whose config.json model_type equals `matcher` (a
    string), or for which `matcher(folder, model_type)` is true. A later registration under the
    same name replaces the earlier one. `default`: asked only after every other family declined."""
    global _default
    reg = _Registration(name or (matcher if isinstance(matcher, str) else getattr(factory, "__qualname__", "family")), matcher, factory)
    if default:
        _default = reg
        return
    _registry[:] = [r for r in _registry if r.name != reg.name] + [reg]


def registered_families() -> list[str]:
    return [r.name for r in _registry] + ([_default.name] if _default else [])


def model_type_of(folder: Path) -> str | None:
    """config.json's `model_type`; None when the folder has no readable config.json."""
    try:
        value = json.loads((folder / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def load_family_modules(names: Sequence[str] | None = None) -> list[str]:
    """Imports the built-in families, the family modules named in `SEGFLOW_TRAINER_FAMILIES` (or
    `names`) and, once, the entry points of the group `segflow_trainer.families`; each module
    registers itself on import. Returns what this call imported."""
    global _entry_points_loaded
    if names is None:
        names = [n.strip() for n in os.environ.get(FAMILIES_ENV, "").split(",") if n.strip()]
    imported = []
    for name in [*BUILTIN_FAMILIES, *names]:
        if name in _loaded_modules:
            continue
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise BadInputError(
                f"{FAMILIES_ENV} names the policy family module {name!r}, which does not import: {err} "
                "(is its folder on PYTHONPATH?)"
            ) from err
        _loaded_modules.add(name)
        imported.append(name)
    if not _entry_points_loaded:
        _entry_points_loaded = True
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            obj = ep.load()
            if callable(obj):  # an entry point may name a register function instead of a module
                obj()
            imported.append(ep.value)
    return imported


def family_factory(folder: Path, uri: str) -> Factory:
    """The factory of the first registered family that handles `folder` (the default last)."""
    model_type = model_type_of(folder)
    for reg in _registry + ([_default] if _default else []):
        if reg.handles(folder, model_type):
            return reg.factory
    what = f"model_type {model_type!r}" if model_type else "no config.json model_type"
    raise BadInputError(
        f"policy {uri} has {what}, and no registered trainer policy family handles it "
        f"(registered: {', '.join(registered_families()) or 'none'}). A family outside the trainer is "
        f"loaded by naming its module in {FAMILIES_ENV} (comma-separated, e.g. "
        f"{FAMILIES_ENV}=my_pkg.trainer_family, with its folder on PYTHONPATH) or through the "
        f"entry-point group {ENTRY_POINT_GROUP}"
    )


def load_family(source: FamilySource) -> PolicyFamily:
    load_family_modules()
    return family_factory(source.folder, source.uri)(source)
