"""One policy update step (spec §6.2): PPO-clip with clip-higher and dual clip, token-mean over the
policy's own tokens, optional low-variance KL to the run's reference policy, AdamW. Full updates for
small models, LoRA (peft) for Hugging Face models. Free of Temporal so tests call it directly.

Versions and idempotency. Step k of run R turns policy version v (the `policy_ref`) into version
v + 1 at `policies/<R>/v<v+1>/`, always from v's stored weights, optimizer state and RNG state, so
redoing a step gives the same bytes and can never apply the step on top of itself. The version's
manifest (`segflow-policy.json`) is written last: a version without it is unfinished and is redone;
one with it is reused when it was made from the same parent and the same batch, and refused
(PolicyVersionConflict) when it was not.

Attempts. An attempt that timed out may still be running (a zombie) while its retry runs on another
trainer, and the two need not produce the same bytes (other GPUs). So no two attempts ever write the
same object: each uploads its files to its own folder, `policies/<R>/v<v+1>/attempts/<attempt>/`
(and its trainer state to `runs/<R>/trainer/v<v+1>/attempts/<attempt>/`), `<attempt>` being the
Temporal attempt number and random hex, and commits by *creating* the manifest (S3 conditional
create, `If-None-Match: *`), which names its folder (`filesDir`) and trainer state. Exactly one
attempt creates it; one that finds it made (before its upload, or when its create is refused) returns
that version as reused (same parent and batch) or raises PolicyVersionConflict, and deletes its own
folders. Readers take the files the manifest lists from the folder it names (fetch_policy;
policySyncWeights on the TypeScript side), so whatever a zombie writes later is never read.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import pickle
import random
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from . import contracts
from .batch import parse_batch
from .distributed import SINGLE_PROCESS, Parallel
from .errors import BadInputError, PolicyVersionConflictError
from .family import FamilySource, ModelOptions, PolicyFamily, load_family, sequence_length
from .loss import PpoClipSettings, low_var_kl, ppo_loss
from .safe_keys import path_under
from .store import Store

MANIFEST = "segflow-policy.json"
MANIFEST_SCHEMA = "segflow.policy/1"

log = logging.getLogger("segflow.trainer")


def _attempts_dir() -> str:
    """The sub-folder of a version (and of its trainer state) holding one folder per attempt:
    "attempts/" (keys.ts `policyAttempt`, read from the exported template)."""
    version = contracts.key("policyVersion", runId="r", version=0)
    return contracts.key("policyAttempt", runId="r", version=0, attempt="a")[len(version) :].removesuffix("a/")


ATTEMPTS_DIR = _attempts_dir()

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 0
    alpha: int = 16
    dropout: float = 0.0
    target_modules: Any = "all-linear"


@dataclass(frozen=True)
class Hyperparameters:
    run_id: str
    step: int
    seed: int = 0
    learning_rate: float = 1e-6
    weight_decay: float = 0.01
    adam_eps: float = 1e-8
    betas: tuple[float, float] = (0.9, 0.999)
    clip_low: float = 0.2
    clip_high: float = 0.2
    dual_clip_c: float = 3.0
    kl_coef: float = 0.0
    ppo_epochs: int = 1
    mini_batches: int = 1
    micro_batch_size: int = 8
    # micro-batches by token budget (token_budget_chunks) instead of micro_batch_size's count; None: off
    micro_batch_tokens: int | None = None
    max_grad_norm: float = 1.0
    max_length: int = 4096
    # the rollouts' sampling temperature: log-probs are those of softmax(logits / T), the distribution
    # the trajectories were drawn from (verl divides the logits by the rollout temperature likewise)
    temperature: float = 1.0
    # truncated importance sampling (veRL's TIS): each token's loss is weighted by
    # min(exp(old log-prob - the server's log-prob), cap) when the server reported one; None: off
    rollout_is_cap: float | None = None
    lora: LoraSettings = field(default_factory=LoraSettings)
    # the dtype the family loads the policy and its reference in ("float32" | "bfloat16"); log-probs
    # stay float32. bf16 is where the trainer's log-probs part from the server's: the consistency
    # metrics (metrics.rollout.logProbDiff*) show it and rollout_is_cap corrects for it (hf_family.py)
    dtype: str = "float32"
    # activation checkpointing in the update's forward passes: less memory, the same result (hf_family.py)
    gradient_checkpointing: bool = False

    @property
    def loss_settings(self) -> PpoClipSettings:
        return PpoClipSettings(clip_low=self.clip_low, clip_high=self.clip_high, dual_clip_c=self.dual_clip_c)

    @property
    def model_options(self) -> ModelOptions:
        return ModelOptions(dtype=self.dtype, gradient_checkpointing=self.gradient_checkpointing)


_FLOAT_FIELDS = {f.name for f in fields(Hyperparameters) if isinstance(f.default, float)}


def parse_hyperparameters(raw: Any) -> Hyperparameters:
    """The hyperparameters `trainingRun` sends, checked against the exported contract
    (core/contracts/training.ts `trainerHyperparametersSchema`: types, bounds, unknown keys);
    absent fields keep the defaults above."""
    contracts.validate("hyperparameters", raw, "hyperparameters")
    kw: dict[str, Any] = {contracts.snake(k): v for k, v in raw.items() if k != "lora"}
    for name in _FLOAT_FIELDS & set(kw):
        kw[name] = float(kw[name])
    if "betas" in kw:
        kw["betas"] = (float(kw["betas"][0]), float(kw["betas"][1]))
    if raw.get("lora") is not None:
        kw["lora"] = LoraSettings(**{contracts.snake(k): v for k, v in raw["lora"].items()})
    return Hyperparameters(**kw)


@dataclass(frozen=True)
class PolicyRef:
    uri: str
    version: int


def parse_policy_ref(raw: Any) -> PolicyRef:
    """The parent version (contract `policy-ref`); a prefix without its trailing "/" is accepted."""
    if isinstance(raw, dict) and isinstance(raw.get("uri"), str):
        raw = {**raw, "uri": raw["uri"].rstrip("/") + "/"}
    contracts.validate("policy-ref", raw, "policy_ref")
    return PolicyRef(uri=raw["uri"], version=raw["version"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


RNG_STATE_FORMAT = 2
"""rng.pt holds only what `torch.load(weights_only=True)` reads (ints, floats, lists, dicts, tensors): Python's
and NumPy's generator states as plain lists. Format 1 (before it) pickled NumPy's state as an ndarray."""


def rng_state() -> dict:
    """The process's Python, NumPy and torch generator states, in a form `torch.load(weights_only=True)` reads."""
    version, internal, gauss = random.getstate()
    algorithm, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "format": RNG_STATE_FORMAT,
        "python": {"version": int(version), "state": [int(x) for x in internal], "gauss": gauss},
        "numpy": {
            "algorithm": str(algorithm),
            "keys": [int(x) for x in keys],
            "pos": int(pos),
            "hasGauss": int(has_gauss),
            "cachedGaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict) -> None:
    """Restores what rng_state saved (after load_rng_state checked it)."""
    py, npy = state["python"], state["numpy"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    np.random.set_state(
        (npy["algorithm"], np.asarray(npy["keys"], dtype=np.uint32), npy["pos"], npy["hasGauss"], npy["cachedGaussian"])
    )
    torch.set_rng_state(state["torch"])


def load_rng_state(path: Path) -> dict:
    """rng.pt read with `weights_only=True` (no pickled code can run). A format-1 file (NumPy's state as an
    ndarray, written before format 2) is read with only NumPy's array reconstruction allowed besides the
    weights-only types, then converted; anything else that is not a well-formed state is a BadInputError."""
    try:
        raw = torch.load(path, weights_only=True)
    except pickle.UnpicklingError as err:
        unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
        if not unsafe or not unsafe <= _NUMPY_ARRAY_GLOBALS:
            raise BadInputError(
                f"the RNG state {path.name} of a trainer state needs more than plain tensors to load ({sorted(unsafe)}): "
                "it is refused rather than unpickled; resume from a version this trainer wrote"
            ) from err
        with torch.serialization.safe_globals([np._core.multiarray._reconstruct, np.ndarray, np.dtype, np.dtypes.UInt32DType]):
            raw = torch.load(path, weights_only=True)
        raw = _rng_state_from_format_1(raw, path)
    return _checked_rng_state(raw, path)


_NUMPY_ARRAY_GLOBALS = {"numpy.dtype", "numpy.ndarray", "numpy._core.multiarray._reconstruct", "numpy.dtypes.UInt32DType"}


def _rng_state_from_format_1(raw: Any, path: Path) -> dict:
    try:
        version, internal, gauss = raw["python"]
        algorithm, keys, pos, has_gauss, cached = raw["numpy"]
        return {
            "format": RNG_STATE_FORMAT,
            "python": {"version": version, "state": list(internal), "gauss": gauss},
            "numpy": {
                "algorithm": algorithm,
                "keys": [int(x) for x in np.asarray(keys, dtype=np.uint32)],
                "pos": int(pos),
                "hasGauss": int(has_gauss),
                "cachedGaussian": float(cached),
            },
            "torch": raw["torch"],
        }
    except (KeyError, TypeError, ValueError) as err:
        raise BadInputError(f"the RNG state {path} is not one segflow's trainer wrote: {err}") from err


def _checked_rng_state(raw: Any, path: Path) -> dict:
    def bad(what: str) -> BadInputError:
        return BadInputError(f"the RNG state {path} is not one segflow's trainer wrote: {what}")

    if not isinstance(raw, dict) or raw.get("format") != RNG_STATE_FORMAT:
        raise bad(f"format {raw.get('format') if isinstance(raw, dict) else type(raw).__name__!r}, expected {RNG_STATE_FORMAT}")
    py, npy, tt = raw.get("python"), raw.get("numpy"), raw.get("torch")
    if not (isinstance(py, dict) and isinstance(py.get("state"), list) and len(py["state"]) == 625):
        raise bad("python state is not 625 integers")
    if not (isinstance(npy, dict) and npy.get("algorithm") == "MT19937" and isinstance(npy.get("keys"), list) and len(npy["keys"]) == 624):
        raise bad("numpy state is not an MT19937 state of 624 keys")
    if not (isinstance(tt, torch.Tensor) and tt.dtype == torch.uint8):
        raise bad("torch state is not a uint8 tensor")
    return raw


def weights_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """A hash of the tensors themselves (names, dtypes, shapes, values), independent of file layout."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _cache_dir(work_dir: Path, uri: str) -> Path:
    return work_dir / "policies" / hashlib.sha256(uri.encode()).hexdigest()[:24]


def fetch_policy(store: Store, uri: str, work_dir: Path) -> Path:
    """Downloads a policy folder once (complete folders are kept, keyed by URI; download_policy says
    what is downloaded). The processes of a sharded update share the work dir: a lock lets one
    download while the others wait."""
    dest = _cache_dir(work_dir, uri)
    done = dest / ".complete"
    if done.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / f"{dest.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return dest
        if dest.exists():
            shutil.rmtree(dest)
        download_policy(store, uri, dest)
        done.write_text(uri)
    return dest


def download_policy(store: Store, uri: str, dest: Path) -> list[str]:
    """A version through its manifest: exactly the files it lists, from the folder it names
    (`filesDir`, the committed attempt's; the version folder itself for versions written before
    attempts had folders), each checked against its size and sha256, and the manifest beside them.
    A folder without a manifest (a base model, a run's initial policy, a trainer state) is downloaded
    whole, less an `attempts/` folder (what unfinished attempts left). Returns the names."""
    raw = _manifest_bytes(store, uri)
    if raw is None:
        return store.download_prefix(uri, dest, skip_dirs=(ATTEMPTS_DIR,))
    manifest = json.loads(raw)
    what = f"the manifest of policy version {uri}"
    contracts.validate_part("policy-manifest", manifest, ("files", "filesDir"), what)
    names = store.download_files(files_prefix(uri, manifest), manifest["files"], dest, f"policy version {uri}")
    (dest / MANIFEST).write_bytes(raw)
    return names


def files_prefix(uri: str, manifest: dict) -> str:
    """Where a version's files are: its folder plus the manifest's `filesDir` (absent: the folder)."""
    return uri.rstrip("/") + "/" + manifest.get("filesDir", "")


def _locked(work_dir: Path, uri: str):
    dest = _cache_dir(work_dir, uri)
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock = open(dest.parent / f"{dest.name}.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    return dest, lock


def keep_as_cached(folder: Path, uri: str, work_dir: Path) -> Path:
    """Makes `folder` (just uploaded to `uri`) the cached copy of `uri`, as if fetch_policy had
    downloaded it: the next step, whose parent it is, needs no download."""
    dest, lock = _locked(work_dir, uri)
    with lock:
        if dest.exists():
            shutil.rmtree(dest)
        folder.rename(dest)
        (dest / ".complete").write_text(uri)
    return dest


def _version_pattern(uri_template: str) -> re.Pattern[str]:
    """The template's URIs and those of its attempts' folders; group 1: the version."""
    head, _, tail = uri_template.partition("{version}")
    return re.compile(re.escape(head) + r"(\d+)" + re.escape(tail) + f"(?:{re.escape(ATTEMPTS_DIR)}[^/]+/)?$")


def evict_versions(
    store: Store, work_dir: Path, run_id: str, newest: int, keep: int, protect: frozenset[str] = frozenset()
) -> list[str]:
    """Removes the cached folders of run `run_id`'s policy versions and trainer states older than
    the `keep` newest up to version `newest` (keep 0: all of them up to `newest`). Other runs'
    folders, base models, and the URIs in `protect` (the run's reference and base model, needed by
    every step) stay. Returns the URIs removed."""
    cache = work_dir / "policies"
    if not cache.is_dir():
        return []
    patterns = [
        _version_pattern(store.uri_of(contracts.key(name, runId=run_id, version="{version}")))
        for name in ("policyVersion", "trainerState")
    ]
    protected = {u.rstrip("/") for u in protect if u}
    removed = []
    for done in sorted(cache.glob("*/.complete")):
        uri = done.read_text()
        versions = [int(m.group(1)) for p in patterns if (m := p.match(uri))]
        if versions and versions[0] <= newest - keep and uri.rstrip("/") not in protected:
            dest, lock = _locked(work_dir, uri)
            with lock:
                shutil.rmtree(dest, ignore_errors=True)
            Path(lock.name).unlink(missing_ok=True)
            removed.append(uri)
    return removed


def clean_work_dir(work_dir: Path) -> list[Path]:
    """What a crash leaves in the work dir, removed when the worker starts (it alone uses the work
    dir then): staging folders of unfinished versions (out/), cache folders whose download did not
    finish (no `.complete`) and `.part` files of interrupted downloads. Returns what it removed."""
    removed: list[Path] = []
    out = work_dir / "out"
    if out.exists():
        shutil.rmtree(out, ignore_errors=True)
        removed.append(out)
    cache = work_dir / "policies"
    if cache.is_dir():
        for folder in sorted(p for p in cache.iterdir() if p.is_dir()):
            if not (folder / ".complete").exists():
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        for part in sorted(cache.rglob("*.part*")):
            if part.is_file():
                part.unlink(missing_ok=True)
                removed.append(part)
    return removed


def _manifest_bytes(store: Store, uri: str) -> bytes | None:
    key = uri.rstrip("/") + "/" + MANIFEST
    if not store.exists(key):
        return None
    return store.get_bytes(key)


def read_manifest(store: Store, uri: str) -> dict | None:
    raw = _manifest_bytes(store, uri)
    return None if raw is None else json.loads(raw)


@dataclass
class LoadedPolicy:
    """A policy version ready to train: its family (family.py) and the run's reference policy."""

    family: PolicyFamily
    reference: str


def load_policy(store: Store, ref: PolicyRef, hp: Hyperparameters, work_dir: Path) -> tuple[LoadedPolicy, dict | None]:
    """Version `ref` through the registered family that handles its folder (family.py)."""
    manifest = read_manifest(store, ref.uri)
    folder = fetch_policy(store, ref.uri, work_dir)
    reference = manifest["reference"] if manifest else ref.uri
    source = FamilySource(
        folder=folder,
        uri=ref.uri,
        manifest=manifest,
        lora=hp.lora,
        fetch_folder=lambda uri: fetch_policy(store, uri, work_dir),
        fetch_bytes=store.get_bytes,
        options=hp.model_options,
    )
    return LoadedPolicy(load_family(source), reference), manifest


@dataclass(frozen=True)
class _Step:
    """One update: its inputs and where its outputs go."""

    store: Store
    hp: Hyperparameters
    ref: PolicyRef
    work_dir: Path
    progress: Progress
    version: int  # the version this step writes (the parent's + 1)
    out_uri: str  # policies/<R>/v<version>/ (its manifest)
    attempt: str  # this attempt's folder name: the Temporal attempt number and random hex
    files_uri: str  # policies/<R>/v<version>/attempts/<attempt>/ (its files)
    state_uri: str  # runs/<R>/trainer/v<version>/attempts/<attempt>/
    parallel: Parallel = SINGLE_PROCESS  # the processes of a sharded update (distributed.py)
    keep_versions: int = 1  # finished versions of the run kept in the work dir's cache (evict_versions)


def token_budget_chunks(idx: Sequence[int], lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Micro-batches of `idx` by token budget: consecutive indices (in `idx`'s order, never
    reordered) are packed while what their forward pass costs stays within `budget`. The cost is the
    padded batch, [B, T]: the longest member's length (`lengths[i]`) × the number of members, not
    the sum of their lengths, since every row is padded to the longest. An index whose length alone
    exceeds the budget is a micro-batch of its own (it cannot be split)."""
    out: list[list[int]] = []
    cur: list[int] = []
    longest = 0
    for i in idx:
        n = lengths[i]
        if cur and max(longest, n) * (len(cur) + 1) > budget:
            out.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, n)
    if cur:
        out.append(cur)
    return out


@dataclass(frozen=True)
class _Rows:
    """The batch's tokenised trajectories, their advantages, and micro-batches of their indices:
    `micro` trajectories each, or with `token_budget` (micro_batch_tokens) packed by their
    `lengths` (token_budget_chunks). Every process of a sharded update tokenised the whole batch and
    cuts the same list, which Parallel.share then deals out."""

    toks: list[Any]
    advs: list[float]
    micro: int
    lengths: Sequence[int] = ()
    token_budget: int | None = None

    def chunks(self, idx: list[int]):
        if self.token_budget is not None:
            yield from token_budget_chunks(idx, self.lengths, self.token_budget)
            return
        for s in range(0, len(idx), self.micro):
            yield idx[s : s + self.micro]

    def advantages(self, c: list[int], like: torch.Tensor) -> torch.Tensor:
        return torch.tensor([self.advs[i] for i in c], dtype=torch.float32)[:, None].expand_as(like)


def _stored(values: dict[int, torch.Tensor], c: list[int], like: torch.Tensor) -> torch.Tensor:
    out = torch.zeros_like(like)
    for j, i in enumerate(c):
        out[j, : values[i].shape[0]] = values[i]
    return out


def update_policy(
    store: Store,
    batch_ref: Any,
    policy_ref_raw: Any,
    hyperparameters: Any,
    work_dir: Path,
    progress: Progress = lambda phase, done, total: None,
    parallel: Parallel = SINGLE_PROCESS,
    keep_versions: int = 1,
    attempt: int = 0,
) -> dict:
    """One policy update. `parallel`: this process's part of a sharded update (distributed.py,
    run by update_cli.py under torchrun); by default the whole update runs in this process.
    `keep_versions`: how many of the run's newest finished versions stay in `work_dir` after the
    upload (SEGFLOW_TRAINER_KEEP_VERSIONS; the newest is the next step's parent), older ones and
    their trainer state are removed, so the work dir does not grow with the run. `attempt`: the
    Temporal attempt number (0 outside Temporal), part of this attempt's folder name. `progress`
    is called at every phase and optimizer step; an exception it raises (the worker's, when the
    activity is cancelled) stops the update there, and an attempt stopped before its commit deletes
    what it uploaded."""
    t0 = time.monotonic()
    hp = parse_hyperparameters(hyperparameters)
    ref = parse_policy_ref(policy_ref_raw)
    if not isinstance(batch_ref, dict) or not isinstance(batch_ref.get("uri"), str):
        raise BadInputError(f"batch_ref must be an ArtifactRef {{uri, sha256, ...}}, got {batch_ref!r}")
    version = ref.version + 1
    # unique per attempt (os.urandom: no training RNG is touched); only process 0 writes with it
    token = f"{attempt}-{secrets.token_hex(6)}"
    step = _Step(
        store=store,
        hp=hp,
        ref=ref,
        work_dir=work_dir,
        progress=progress,
        version=version,
        out_uri=store.uri_of(contracts.key("policyVersion", runId=hp.run_id, version=version)),
        attempt=token,
        files_uri=store.uri_of(contracts.key("policyAttempt", runId=hp.run_id, version=version, attempt=token)),
        state_uri=store.uri_of(contracts.key("trainerStateAttempt", runId=hp.run_id, version=version, attempt=token)),
        parallel=parallel,
        keep_versions=keep_versions,
    )
    batch, batch_sha = _read_batch(step, batch_ref)
    existing = _reuse_or_conflict(step, batch_sha)
    if existing is not None:
        progress("reused", 1, 1)
        return _result(existing, reused=True, duration_ms=(time.monotonic() - t0) * 1000)

    loaded, params, optimizer = _load_for_training(step)
    fam = loaded.family
    progress("tokenize", 0, len(batch.trajectories))
    toks = [fam.tokenize(t, hp.max_length) for t in batch.trajectories]
    rows = _Rows(
        toks,
        [t.advantage for t in batch.trajectories],
        hp.micro_batch_size,
        lengths=[sequence_length(fam, t) for t in toks],
        token_budget=hp.micro_batch_tokens,
    )
    old_lp, ref_lp = _old_log_probs(step, fam, rows, lambda: fetch_policy(store, loaded.reference, work_dir))
    rollout_lp = _rollout_log_probs(fam, rows)
    stats, done_updates = _ppo_epochs(step, fam, params, optimizer, rows, old_lp, ref_lp, rollout_lp)
    shift = _log_prob_shift(step, fam, rows, old_lp)
    stats["consistency"] = _consistency(old_lp, rollout_lp)
    optimizer_state = parallel.gather_for_save(fam, optimizer)
    manifest, reused = parallel.from_main(
        lambda: _save_version(step, loaded, optimizer_state, rows, batch_sha, stats, done_updates, shift)
    )
    progress("reused" if reused else "done", 1, 1)
    return _result(manifest, reused=reused, duration_ms=(time.monotonic() - t0) * 1000)


def _read_batch(step: _Step, batch_ref: dict) -> tuple[Any, str]:
    """The batch and the sha256 of its bytes, checked against the reference's."""
    step.progress("batch", 0, 1)
    raw = step.store.get_bytes(batch_ref["uri"])
    batch_sha = hashlib.sha256(raw).hexdigest()
    if batch_ref.get("sha256") and batch_ref["sha256"] != batch_sha:
        raise BadInputError(
            f"batch {batch_ref['uri']} has sha256 {batch_sha}, the reference says {batch_ref['sha256']}: "
            "it changed after it was assembled"
        )
    return parse_batch(raw, batch_ref["uri"]), batch_sha


def _reuse_or_conflict(step: _Step, batch_sha: str) -> dict | None:
    """The manifest of a finished version made from the same parent and batch (a retried step),
    None when the version is not finished, PolicyVersionConflict when it was made from others."""
    existing = read_manifest(step.store, step.out_uri)
    if existing is None:
        return None
    if existing.get("batchSha256") == batch_sha and existing.get("parent", {}).get("uri") == step.ref.uri:
        return existing
    raise PolicyVersionConflictError(
        f"policy version v{step.version} of run {step.hp.run_id} already exists ({step.out_uri}) and was made from "
        f"parent {existing.get('parent', {}).get('uri')} and batch {existing.get('batchSha256')}, not from "
        f"{step.ref.uri} and batch {batch_sha}; refusing to apply step {step.hp.step} a second time"
    )


def _load_optimizer_state(path: Path) -> dict:
    """optimizer.pt (an optimizer's state_dict: tensors, numbers, lists, dicts) read with `weights_only=True`."""
    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError as err:
        raise BadInputError(
            f"the optimizer state {path.name} holds more than tensors, numbers and containers: it is refused rather "
            f"than unpickled ({str(err).splitlines()[-1][:300]})"
        ) from err


def _load_for_training(step: _Step) -> tuple[LoadedPolicy, list[torch.nn.Parameter], torch.optim.Optimizer]:
    """The parent version, seeded, with the parent's RNG and optimizer state when it has them."""
    store, hp, ref, work_dir = step.store, step.hp, step.ref, step.work_dir
    step.progress("load", 0, 1)
    seed_everything(hp.seed)
    loaded, parent_manifest = load_policy(store, ref, hp, work_dir)
    loaded.family = step.parallel.shard(loaded.family)
    parent_state = parent_manifest.get("trainerState") if parent_manifest else None
    state_files: dict[str, Any] = {}
    if parent_state:
        state_dir = fetch_policy(store, parent_state, work_dir)
        state_files["rng"] = load_rng_state(state_dir / "rng.pt")
        state_files["optimizer"] = _load_optimizer_state(state_dir / "optimizer.pt")
        set_rng_state(state_files["rng"])
    params = loaded.family.parameters()
    optimizer = torch.optim.AdamW(
        params, lr=hp.learning_rate, betas=hp.betas, eps=hp.adam_eps, weight_decay=hp.weight_decay, foreach=False
    )
    if "optimizer" in state_files:
        try:
            step.parallel.load_optimizer_state(optimizer, state_files["optimizer"])
        except (ValueError, KeyError) as err:
            raise BadInputError(f"the optimizer state of {ref.uri} does not fit its model: {err}") from err
        for g in optimizer.param_groups:
            g["lr"] = hp.learning_rate
    return loaded, params, optimizer


def _old_log_probs(
    step: _Step, fam: PolicyFamily, rows: _Rows, reference_folder: Callable[[], Path]
) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """The policy's log-probs before this update (the ratio's denominator) and, with KL, the
    reference policy's; per trajectory, over its own positions."""
    hp = step.hp
    fam.eval()
    old_lp: dict[int, torch.Tensor] = {}
    ref_lp: dict[int, torch.Tensor] = {}
    with torch.no_grad():
        for c, counts in step.parallel.share(list(rows.chunks(list(range(len(rows.toks)))))):
            items = [rows.toks[i] for i in c]
            lp, _, _ = fam.log_probs(items, temperature=hp.temperature)
            for j, i in enumerate(c if counts else []):  # a zero-weight micro-batch stores nothing
                old_lp[i] = lp[j, : fam.width(rows.toks[i])].clone()
            if hp.kl_coef > 0:
                rlp = fam.reference_log_probs(items, reference_folder, temperature=hp.temperature)
                for j, i in enumerate(c if counts else []):
                    ref_lp[i] = rlp[j, : fam.width(rows.toks[i])].clone()
    return step.parallel.merge(old_lp), step.parallel.merge(ref_lp)


def _rollout_log_probs(fam: PolicyFamily, rows: _Rows) -> dict[int, torch.Tensor]:
    """Per trajectory, over its log-prob positions, the log-prob the policy server reported for the
    token it sampled there (NaN where it reported none); only trajectories that carry some."""
    out: dict[int, torch.Tensor] = {}
    for i, item in enumerate(rows.toks):
        server = getattr(item, "rollout_log_probs", None)
        if not server:
            continue
        width = fam.width(item)
        # position j predicts token j + 1
        out[i] = torch.tensor([math.nan if x is None else x for x in server[1 : width + 1]], dtype=torch.float32)
    return out


def _consistency(old_lp: dict[int, torch.Tensor], rollout_lp: dict[int, torch.Tensor]) -> list[float]:
    """Training–inference consistency: [mean, max, count] of |trainer log-prob − server log-prob|
    over the sampled tokens the server reported, before the update (veRL's
    `training/rollout_probs_diff_*`)."""
    diffs = [
        (old_lp[i][: len(r)] - r).abs()[~torch.isnan(r)] for i, r in rollout_lp.items()
    ]
    d = torch.cat(diffs) if diffs else torch.zeros(0)
    if d.numel() == 0:
        return []
    return [float(d.mean().item()), float(d.max().item()), float(d.numel())]


def _is_weights(hp: Hyperparameters, c: list[int], old: torch.Tensor, rollout_lp: dict[int, torch.Tensor]) -> torch.Tensor | None:
    """Truncated importance-sampling weights min(exp(old − server), cap); 1 where the server gave none."""
    if hp.rollout_is_cap is None or not rollout_lp:
        return None
    server = torch.full_like(old, math.nan)
    for j, i in enumerate(c):
        if i in rollout_lp:
            r = rollout_lp[i][: server.shape[1]]
            server[j, : r.shape[0]] = r
    w = torch.clamp(torch.exp(old - server), max=hp.rollout_is_cap)
    return torch.where(torch.isnan(server), torch.ones_like(w), w)


_ACC_KEYS = ("loss", "pg_loss", "clip", "dual", "approx_kl", "kl", "entropy", "is_weight")


def _ppo_epochs(
    step: _Step,
    fam: PolicyFamily,
    params: list[torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    rows: _Rows,
    old_lp: dict[int, torch.Tensor],
    ref_lp: dict[int, torch.Tensor],
    rollout_lp: dict[int, torch.Tensor],
) -> tuple[dict[str, list[float]], int]:
    """`ppo_epochs` passes over the batch in a fresh random order, one optimizer step per
    mini-batch. Returns each step's statistics and the number of steps."""
    hp, n = step.hp, len(rows.toks)
    fam.train()
    stats: dict[str, list[float]] = {k: [] for k in (*_ACC_KEYS, "grad_norm")}
    total_updates = hp.ppo_epochs * hp.mini_batches
    done_updates = 0
    for _epoch in range(hp.ppo_epochs):
        order = step.parallel.same_order(torch.randperm(n).tolist())
        size = -(-n // hp.mini_batches)
        for mb_start in range(0, n, size):
            mb = order[mb_start : mb_start + size]
            tokens_in_mb = float(sum(fam.policy_tokens(rows.toks[i]) for i in mb))
            optimizer.zero_grad(set_to_none=True)
            acc = _mini_batch_gradients(hp, fam, rows, mb, tokens_in_mb, old_lp, ref_lp, rollout_lp, step.parallel)
            grad_norm = step.parallel.clip_grad_norm(params, hp.max_grad_norm)
            if not torch.isfinite(grad_norm):
                raise BadInputError(
                    f"step {hp.step} of run {hp.run_id}: the gradient norm is {grad_norm.item()} (not finite); "
                    "check the batch's advantages and the learning rate"
                )
            optimizer.step()
            for k, v in acc.items():
                stats[k].append(v)
            stats["grad_norm"].append(float(grad_norm.item()))
            done_updates += 1
            step.progress("train", done_updates, total_updates)
    return stats, done_updates


def _mini_batch_gradients(
    hp: Hyperparameters,
    fam: PolicyFamily,
    rows: _Rows,
    mb: list[int],
    tokens_in_mb: float,
    old_lp: dict[int, torch.Tensor],
    ref_lp: dict[int, torch.Tensor],
    rollout_lp: dict[int, torch.Tensor],
    parallel: Parallel = SINGLE_PROCESS,
) -> dict[str, float]:
    """Accumulates the mini-batch's loss gradients micro-batch by micro-batch (a sharded update: this
    process's share of them); returns its statistics."""
    acc = {k: 0.0 for k in _ACC_KEYS}
    for c, counts in parallel.share(list(rows.chunks(mb))):
        lp, mask, ent = fam.log_probs([rows.toks[i] for i in c], with_entropy=True, temperature=hp.temperature)
        if not counts:  # runs the other processes' collectives, adds nothing
            lp.backward(torch.zeros_like(lp))
            continue
        old = _stored(old_lp, c, lp)
        weights = _is_weights(hp, c, old, rollout_lp)
        out = ppo_loss(lp, old, rows.advantages(c, lp), mask, hp.loss_settings, weights)
        tokens = out.tokens
        # Token-mean over the whole mini-batch: each micro-batch adds its share.
        weight = tokens / tokens_in_mb if tokens_in_mb else 0.0
        loss = out.loss * weight
        acc["pg_loss"] += float(out.loss.item()) * weight
        if hp.kl_coef > 0:
            kl = (low_var_kl(lp, _stored(ref_lp, c, lp)) * mask).sum() / max(tokens_in_mb, 1.0)
            loss = loss + hp.kl_coef * kl
            acc["kl"] += float(kl.item())
        loss.backward()
        acc["loss"] += float(loss.item())
        acc["clip"] += out.clip_fraction * weight
        acc["dual"] += out.dual_clip_fraction * weight
        acc["approx_kl"] += out.approx_kl * weight
        with torch.no_grad():
            acc["entropy"] += float((ent * mask).sum().item()) / max(tokens_in_mb, 1.0)
            if weights is not None:
                acc["is_weight"] += float((weights * mask).sum().item()) / max(tokens_in_mb, 1.0)
    return parallel.sum(acc)


def _log_prob_shift(step: _Step, fam: PolicyFamily, rows: _Rows, old_lp: dict[int, torch.Tensor]) -> dict[str, list[float]]:
    """How the update moved the policy's log-probs of the batch: up for A > 0, down for A < 0.
    Per sign, [summed change over the policy's tokens, token count]."""
    fam.eval()
    shift = {"positive": [0.0, 0.0], "negative": [0.0, 0.0]}
    with torch.no_grad():
        for c, counts in step.parallel.share(list(rows.chunks(list(range(len(rows.toks)))))):
            lp, mask, _ = fam.log_probs([rows.toks[i] for i in c], temperature=step.hp.temperature)
            for j, i in enumerate(c if counts else []):
                w = old_lp[i].shape[0]
                m = mask[j, :w]
                d = ((lp[j, :w] - old_lp[i]) * m).sum().item()
                key = "positive" if rows.advs[i] > 0 else "negative" if rows.advs[i] < 0 else None
                if key:
                    shift[key][0] += d
                    shift[key][1] += float(m.sum().item())
    return step.parallel.sum(shift)


def _staging_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _save_version(
    step: _Step,
    loaded: LoadedPolicy,
    optimizer_state: dict,
    rows: _Rows,
    batch_sha: str,
    stats: dict[str, list[float]],
    done_updates: int,
    shift: dict[str, list[float]],
) -> tuple[dict, bool]:
    """Saves the version and its trainer state, uploads both to this attempt's folders and commits
    them by creating the manifest. Returns the version's manifest and whether it is another
    attempt's (reused: made from the same parent and batch while this attempt ran)."""
    store, hp, fam = step.store, step.hp, loaded.family
    step.progress("save", 0, 1)
    out_dir = _staging_dir(path_under(step.work_dir / "out", hp.run_id, f"v{step.version}", what="run id"))
    fam.save(out_dir)
    wsha = weights_sha256(fam.weights())
    state_dir = _staging_dir(path_under(step.work_dir / "out", hp.run_id, f"v{step.version}.state", what="run id"))
    torch.save(optimizer_state, state_dir / "optimizer.pt")
    torch.save(rng_state(), state_dir / "rng.pt")

    # Another attempt of this step (a retry while this one stalled) may have committed meanwhile:
    # then there is nothing to upload.
    try:
        existing = _reuse_or_conflict(step, batch_sha)
    except PolicyVersionConflictError:
        _discard(out_dir, state_dir)
        raise
    if existing is not None:
        _discard(out_dir, state_dir)
        return existing, True

    outcome = "failed"  # then "unknown" once the create is sent, "committed" or "lost" once answered
    try:
        files = _upload(step, out_dir, step.files_uri)
        _upload(step, state_dir, step.state_uri)
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "runId": hp.run_id,
            "step": hp.step,
            "version": step.version,
            "uri": step.out_uri,
            "kind": fam.kind,
            "baseModel": fam.base_model,
            "reference": loaded.reference,
            "parent": {"uri": step.ref.uri, "version": step.ref.version},
            "batchSha256": batch_sha,
            "weightsSha256": wsha,
            "trainerState": step.state_uri,
            "files": files,
            "filesDir": step.files_uri[len(step.out_uri) :],
            "metrics": _metrics(hp, fam, rows, stats, done_updates, shift),
        }
        # What the TypeScript side and the next step read: checked before it is written (a bug here fails the
        # update with the field named instead of storing a version nobody can read).
        contracts.validate("policy-manifest", manifest, f"the manifest of {step.out_uri}")
        body = json.dumps(manifest, indent=1, sort_keys=True).encode()
        step.progress("commit", 0, 1)
        outcome = "unknown"
        outcome = "committed" if _commit(step, manifest, body) else "lost"
    finally:
        if outcome != "committed":
            _discard(out_dir, state_dir)
        if outcome in ("failed", "lost"):  # failed, cancelled or beaten: what this attempt uploaded is an orphan
            _delete_attempt(step, step.files_uri, step.state_uri)
        # "unknown" (the create raised): the manifest may exist and name these files; they stay
    if outcome == "lost":
        existing = _reuse_or_conflict(step, batch_sha)
        if existing is None:
            raise RuntimeError(f"the manifest of {step.out_uri} existed a moment ago and is gone; retry the update")
        return existing, True
    _retire_outputs(step, loaded, out_dir, state_dir, body)
    _delete_other_attempts(step)
    return manifest, False


def _upload(step: _Step, folder: Path, prefix_uri: str) -> dict[str, dict]:
    """Uploads a staged folder file by file (progress between files: a cancelled update stops there)."""
    out: dict[str, dict] = {}
    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    for i, path in enumerate(paths):
        step.progress("upload", i, len(paths))
        rel = path.relative_to(folder).as_posix()
        ct = "application/json" if rel.endswith(".json") else "application/octet-stream"
        ref = step.store.put_file(prefix_uri + rel, path, ct)
        out[rel] = {"sha256": ref["sha256"], "bytes": ref["bytes"]}
    return out


def _commit(step: _Step, manifest: dict, body: bytes) -> bool:
    """Creates the version's manifest unless one exists (S3 `If-None-Match: *`): True when this
    attempt's is the version's manifest, False when another attempt's is."""
    if step.store.put_bytes_if_absent(step.out_uri + MANIFEST, body, "application/json"):
        return True
    existing = read_manifest(step.store, step.out_uri)
    if existing is not None and existing.get("filesDir") == manifest["filesDir"]:
        return True  # this attempt's own create, whose answer was lost and whose retry was refused
    log.info(
        "policy version v%d of run %s was committed by another attempt (%s) while attempt %s ran: its files are orphans",
        step.version,
        step.hp.run_id,
        (existing or {}).get("filesDir"),
        step.attempt,
    )
    return False


def _discard(*folders: Path) -> None:
    """Removes staging folders whose bytes are not the version's (never to become its cached copy)."""
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()  # out/<run>/, when nothing else is staged there


def _delete_attempt(step: _Step, *prefixes: str) -> None:
    """Best effort: an orphan left behind costs storage, never correctness (no reader looks at it)."""
    for prefix in prefixes:
        try:
            step.store.delete_prefix(prefix)
        except Exception as err:  # noqa: BLE001 - best effort, logged
            log.warning("could not delete %s (an orphaned update attempt): %s", prefix, err)


def _delete_other_attempts(step: _Step) -> None:
    """After the commit: other attempts' folders of this version are orphans (an attempt that is
    still running finds the manifest and deletes what it writes after this, itself)."""
    state_root = step.state_uri[: -len(step.attempt) - 1]
    for root, own in ((step.out_uri + ATTEMPTS_DIR, step.files_uri), (state_root, step.state_uri)):
        base = step.store.key_of(root)
        try:
            folders = {k[: k.find("/", len(base)) + 1] for k in step.store.list(root) if "/" in k[len(base) :]}
        except Exception as err:  # noqa: BLE001 - best effort, logged
            log.warning("could not list %s: %s", root, err)
            continue
        stale = sorted(folders - {step.store.key_of(own)})
        _delete_attempt(step, *(f"s3://{step.store.bucket}/{k}" for k in stale))


def _retire_outputs(step: _Step, loaded: LoadedPolicy, out_dir: Path, state_dir: Path, manifest: bytes) -> None:
    """The version is finished (its manifest is stored): its staging folders become the cached copy
    of the new version (the next step's parent) or go, and the run's older cached versions go, so
    the work dir holds `keep_versions` versions of a run however long it runs."""
    if step.keep_versions > 0:
        (out_dir / MANIFEST).write_bytes(manifest)  # as a download of the version would have it
        keep_as_cached(out_dir, step.out_uri, step.work_dir)
        keep_as_cached(state_dir, step.state_uri, step.work_dir)
    else:
        shutil.rmtree(out_dir, ignore_errors=True)
        shutil.rmtree(state_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        out_dir.parent.rmdir()  # out/<run>/, when nothing else is staged there
    evict_versions(
        step.store,
        step.work_dir,
        step.hp.run_id,
        step.version,
        step.keep_versions,
        protect=frozenset({loaded.reference, loaded.family.base_model or ""}),
    )


def _metrics(
    hp: Hyperparameters,
    fam: PolicyFamily,
    rows: _Rows,
    stats: dict[str, list[float]],
    done_updates: int,
    shift: dict[str, list[float]],
) -> dict:
    return {
        "loss": _mean(stats["loss"]),
        "pgLoss": _mean(stats["pg_loss"]),
        "pgClipFraction": _mean(stats["clip"]),
        "dualClipFraction": _mean(stats["dual"]),
        "approxKl": _mean(stats["approx_kl"]),
        "kl": _mean(stats["kl"]) if hp.kl_coef > 0 else None,
        "entropy": _mean(stats["entropy"]),
        "gradNorm": _mean(stats["grad_norm"]),
        "updates": done_updates,
        "trajectories": len(rows.toks),
        "responseTokens": int(sum(fam.policy_tokens(t) for t in rows.toks)),
        "truncated": sum(1 for t in rows.toks if t.truncated),
        "learningRate": hp.learning_rate,
        "logProbShift": {k: (v[0] / v[1] if v[1] else None) for k, v in shift.items()},
        "rollout": _rollout_metrics(hp, rows, stats),
    }


def _rollout_metrics(hp: Hyperparameters, rows: _Rows, stats: dict[str, list[float]]) -> dict:
    """Training–inference consistency on the sampled tokens, and what the trainer did about it."""
    c = stats.get("consistency") or []
    return {
        "logProbDiffMean": c[0] if c else None,
        "logProbDiffMax": c[1] if c else None,
        "comparedTokens": int(c[2]) if c else 0,
        "sampledTurns": sum(getattr(t, "sampled_turns", 0) for t in rows.toks),
        "retokenizedTurns": sum(getattr(t, "retokenized_turns", 0) for t in rows.toks),
        "foreignTurns": sum(getattr(t, "foreign_turns", 0) for t in rows.toks),
        "images": sum(len(getattr(t, "images", []) or []) for t in rows.toks),
        "isWeightMean": _mean(stats["is_weight"]) if hp.rollout_is_cap is not None and c else None,
    }


def _result(manifest: dict, reused: bool, duration_ms: float) -> dict:
    result = {
        "policy": {
            "uri": manifest["uri"],
            "version": manifest["version"],
            "kind": manifest["kind"],
            "weightsSha256": manifest["weightsSha256"],
        },
        "metrics": {**manifest["metrics"], "reused": reused, "durationMs": round(duration_ms, 1)},
    }
    contracts.validate("update-result", result, "update_policy's result")
    return result


def _mean(xs: list[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else 0.0
