"""Sharded policy updates: `update_policy` across the processes of one trainer host, data parallel
with PyTorch FSDP2 (`torch.distributed.fsdp.fully_shard`): gloo on CPU, nccl with one GPU per process.

update.py runs the same code in one process and in many; it asks a `Parallel` at the few places
where they differ. The base class is the single process (every hook is the identity, today's path);
`Fsdp` is one process of a `torchrun` group (update_cli.py starts it; worker.py launches it when
`SEGFLOW_TRAINER_NPROC` > 1):

- every process loads the parent version and tokenises the whole batch; the model is then sharded
  (each transformer block is one FSDP unit, the rest the root unit), so its weights, gradients and
  AdamW state are split over the processes;
- each mini-batch is cut into micro-batches exactly as in one process, and process r takes
  micro-batches r, r + W, r + 2W, ... (W processes). The loss stays the token-mean over the whole
  mini-batch (its token count is global, every process tokenised everything), so the gradients are
  SUMMED over the processes (FSDP's default divides by W; we set the divide factor to 1), which gives
  the one-process gradient up to summation order. A process with fewer micro-batches runs a
  zero-weight one so that all run the same collectives;
- the mini-batch order (`torch.randperm`) is drawn on every process from the same seeded RNG and
  process 0's is used by all; the gradient norm that clipping uses is the global one;
- old and reference log-probs and the log-prob shift are computed in shares and gathered;
- to save, the full weights and the full AdamW state are gathered onto process 0 (in the same
  format as one process writes, so a run may change its process count between steps); process 0
  alone writes to S3 and every process returns process 0's result.

The launch: `python -m torch.distributed.run --standalone --nproc-per-node N -m
segflow_trainer.update_cli ...` (`torchrun`; update_cli.py).
"""

from __future__ import annotations

import datetime
import os
import pickle
from typing import Any, Callable, Iterable, TypeVar

import torch

T = TypeVar("T")


class Parallel:
    """What update.py asks of the processes it runs in. This base class is one process."""

    rank = 0
    world_size = 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes (S3, the work dir's staging folders) and reports progress."""
        return self.rank == 0

    def shard(self, family: Any) -> Any:
        """The family to train, its module sharded (here: as it is)."""
        return family

    def load_optimizer_state(self, optimizer: torch.optim.Optimizer, state: dict) -> None:
        """Loads a full optimizer state (as `optimizer.state_dict()` of one process writes it)."""
        optimizer.load_state_dict(state)

    def share(self, chunks: list[list[int]]) -> list[tuple[list[int], bool]]:
        """This process's micro-batches of `chunks`, each with whether it counts: a process with
        fewer than the others also runs zero-weight ones (False) to keep the collectives in step."""
        return [(c, True) for c in chunks]

    def same_order(self, order: list[int]) -> list[int]:
        """Process 0's mini-batch order, so that every process takes its share of the same mini-batches."""
        return order

    def merge(self, values: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        """Per-trajectory tensors that each process computed for its share, gathered on every process."""
        return values

    def sum(self, values: dict[str, Any]) -> dict[str, Any]:
        """Statistics (floats, or lists of floats) summed over the processes."""
        return values

    def clip_grad_norm(self, params: list[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
        """Clips the gradients to the global norm `max_norm`; returns the global norm before clipping."""
        return torch.nn.utils.clip_grad_norm_(params, max_norm)

    def gather_for_save(self, family: Any, optimizer: torch.optim.Optimizer) -> dict | None:
        """The full optimizer state on process 0 (None elsewhere), after which process 0's family
        holds the full weights (`save`, `weights` work as in one process)."""
        return optimizer.state_dict()

    def from_main(self, fn: Callable[[], T]) -> T:
        """Runs `fn` on process 0 alone and returns its result (or raises its error) on every process."""
        return fn()

    def close(self, together: bool = True) -> None:
        pass


SINGLE_PROCESS = Parallel()


def block_classes(model: torch.nn.Module) -> set[str]:
    """The class names of the model's transformer blocks: what Hugging Face models declare as
    `_no_split_modules` (the unit accelerate never splits over devices)."""
    names: set[str] = set()
    for m in model.modules():
        declared = getattr(m, "_no_split_modules", None)
        if declared:
            names.update(declared)
    return names


class Fsdp(Parallel):
    """One process of a torchrun group (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT set by torchrun)."""

    def __init__(self, param_dtype: str = "float32", timeout_s: float = 1800.0) -> None:
        import torch.distributed as dist
        from torch.distributed.device_mesh import init_device_mesh

        self.dist = dist
        if torch.cuda.is_available():
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local_rank)
            self.device = torch.device("cuda", local_rank)
            backend = "nccl"
        else:
            self.device = torch.device("cpu")
            backend = "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.mesh = init_device_mesh(self.device.type, (self.world_size,))
        dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
        if param_dtype not in dtypes:
            raise ValueError(f"FSDP param dtype {param_dtype!r}: expected one of {', '.join(dtypes)}")
        self.param_dtype = dtypes[param_dtype]
        self._model: torch.nn.Module | None = None

    # -- the model -----------------------------------------------------------------------------

    def shard(self, family: Any) -> Any:
        from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

        model = getattr(family, "model", None)
        if not isinstance(model, torch.nn.Module):
            from .errors import BadInputError

            raise BadInputError(
                f"policy family {type(family).__name__} has no `model` torch module: a sharded update "
                "(SEGFLOW_TRAINER_NPROC > 1) shards a family's `model` (family.ModuleFamily)"
            )
        mp = MixedPrecisionPolicy(param_dtype=self.param_dtype, reduce_dtype=torch.float32)
        kw = {"mesh": self.mesh, "mp_policy": mp, "reshard_after_forward": True}
        blocks = block_classes(model)
        for m in list(model.modules()):
            if m is not model and type(m).__name__ in blocks:
                fully_shard(m, **kw)
        fully_shard(model, **kw)
        for m in model.modules():
            if isinstance(m, FSDPModule):
                # The loss of each process is its part of the mini-batch's token-mean: the mini-batch's
                # gradient is the SUM of the processes' (FSDP averages by default): a plain SUM reduction
                # (gloo has no pre-multiplied sum; with a factor of 1 nothing is divided after it).
                m.set_gradient_divide_factor(1.0)
                m.set_force_sum_reduction_for_comms(True)
        self._model = model
        return _OutputsOnCpu(family)

    def load_optimizer_state(self, optimizer: torch.optim.Optimizer, state: dict) -> None:
        from torch.distributed.tensor import DTensor, distribute_tensor

        params = [p for g in optimizer.param_groups for p in g["params"]]
        sharded: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
        for i, s in state.get("state", {}).items():
            if not 0 <= int(i) < len(params):
                raise ValueError(f"state of parameter {i}, the optimizer has {len(params)}")
            p = params[int(i)]
            sharded["state"][i] = {
                k: (
                    distribute_tensor(v.to(self.device), p.device_mesh, p.placements, src_data_rank=None)
                    if isinstance(p, DTensor) and isinstance(v, torch.Tensor) and tuple(v.shape) == tuple(p.shape)
                    else v
                )
                for k, v in s.items()
            }
        optimizer.load_state_dict(sharded)

    def clip_grad_norm(self, params: list[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
        from torch.distributed.tensor import DTensor

        grads = [p.grad for p in params if p.grad is not None]
        total = torch.nn.utils.get_total_norm(grads, 2.0)
        if isinstance(total, DTensor):
            total = total.full_tensor()  # the norm over every process's shard
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
        return total.detach().to("cpu")

    def gather_for_save(self, family: Any, optimizer: torch.optim.Optimizer) -> dict | None:
        from torch.distributed.tensor import DTensor

        def full(t: Any) -> Any:
            if isinstance(t, DTensor):
                t = t.full_tensor()  # a collective: every process gathers the same tensors in the same order
            return t.detach().to("cpu") if isinstance(t, torch.Tensor) else t

        main = self.is_main
        sd = optimizer.state_dict()
        state: dict[int, dict[str, Any]] = {}
        for i, s in sorted(sd["state"].items()):
            gathered = {k: full(v) for k, v in s.items()}
            if main:  # the other processes take part in the gathering and drop the result
                state[i] = gathered
        model = self._model
        assert model is not None, "shard() first"
        replaced: dict[int, torch.nn.Parameter | None] = {}
        for m in model.modules():
            for name, p in list(m._parameters.items()):
                if p is None:
                    continue
                if id(p) not in replaced:  # tied weights: gathered once, kept tied
                    t = full(p)
                    replaced[id(p)] = torch.nn.Parameter(t, requires_grad=p.requires_grad) if main else None
                if main:
                    m._parameters[name] = replaced[id(p)]
            if main:
                for name, b in list(m._buffers.items()):
                    if b is not None:
                        m._buffers[name] = b.detach().to("cpu")
        return {"state": state, "param_groups": sd["param_groups"]} if main else None

    # -- the work ------------------------------------------------------------------------------

    def share(self, chunks: list[list[int]]) -> list[tuple[list[int], bool]]:
        mine = [(c, True) for c in chunks[self.rank :: self.world_size]]
        most = -(-len(chunks) // self.world_size)
        return mine + [(chunks[-1], False)] * (most - len(mine)) if chunks else mine

    def same_order(self, order: list[int]) -> list[int]:
        box: list[Any] = [order if self.is_main else None]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]

    def merge(self, values: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        parts: list[Any] = [None] * self.world_size
        self.dist.all_gather_object(parts, {i: v.to("cpu") for i, v in values.items()})
        out: dict[int, torch.Tensor] = {}
        for part in parts:
            out.update(part)
        return out

    def sum(self, values: dict[str, Any]) -> dict[str, Any]:
        keys = sorted(values)
        flat = [float(x) for k in keys for x in _as_list(values[k])]
        t = torch.tensor(flat, dtype=torch.float64, device=self._comm_device())
        self.dist.all_reduce(t)
        it: Iterable[float] = iter(t.tolist())
        out: dict[str, Any] = {}
        for k in keys:
            v = values[k]
            out[k] = [next(it) for _ in v] if isinstance(v, list) else next(it)  # type: ignore[call-overload]
        return out

    def from_main(self, fn: Callable[[], T]) -> T:
        box: list[Any] = [None]
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except Exception as err:  # noqa: BLE001 - re-raised on every process below
                box[0] = ("error", _picklable(err))
        self.dist.broadcast_object_list(box, src=0)
        status, value = box[0]
        if status == "error":
            raise value
        return value

    def close(self, together: bool = True) -> None:
        """Tears the group down; `together` (after a successful update) first waits for every process:
        one that destroys its gloo group while another is still at work (process 0 writing the
        result) can abort in teardown ("terminate called without an active exception"), and torchrun
        then stops the others before the result exists. A failed process does not wait (the others
        may be inside another collective)."""
        if self.dist.is_initialized():
            try:
                if together:
                    self.dist.barrier()
            finally:
                self.dist.destroy_process_group()

    def _comm_device(self) -> torch.device:
        return self.device


def _as_list(v: Any) -> list[float]:
    return list(v) if isinstance(v, list) else [v]


def _picklable(err: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:  # noqa: BLE001 - any error that does not travel becomes a RuntimeError with its text
        return RuntimeError(f"{type(err).__name__}: {err}")


class _OutputsOnCpu:
    """The family, with log-probs handed to update.py on the CPU (where it keeps advantages, masks and
    stored log-probs); the model itself runs on this process's device (FSDP moves its inputs there).
    Moving [B, T] log-probs is cheap and keeps the autograd graph."""

    def __init__(self, family: Any) -> None:
        self._family = family

    def __getattr__(self, name: str) -> Any:
        return getattr(self._family, name)

    def log_probs(self, items: list[Any], with_entropy: bool = False, temperature: float = 1.0):
        lp, mask, ent = self._family.log_probs(items, with_entropy=with_entropy, temperature=temperature)
        return lp.to("cpu"), mask.to("cpu"), None if ent is None else ent.to("cpu")

    def reference_log_probs(self, items: list[Any], reference_folder: Callable[[], Any], temperature: float = 1.0):
        return self._family.reference_log_probs(items, reference_folder, temperature=temperature).to("cpu")
