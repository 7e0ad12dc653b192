"""Hugging Face policies as trainable policies: full updates, or a LoRA adapter (peft).

Causal LMs and vision-language models (image-text-to-text, e.g. Qwen2.5-VL / Qwen3-VL): trajectories
are tokenised with the policy's own chat template (batch.py); a vision-language policy gets its
images as the server did (vision.py): pixel values, patch grids and `mm_token_type_ids` go into every
forward pass (log-probs, reference log-probs, the update). It implements family.py's `PolicyFamily`
and registers itself as the default family: it takes the model types transformers knows and peft
adapter folders (a LoRA version).

Model options (family.ModelOptions, from the hyperparameters `dtype` and `gradientCheckpointing`):

- `dtype`: the dtype the policy, a LoRA version's base model and the KL reference model are loaded
  in (`from_pretrained(dtype=...)`). Log-probs are always taken in float32 (`token_log_probs` casts
  the logits). With bfloat16 a full update trains bf16 weights with a bf16 AdamW state (no float32
  master copy: steps below a weight's bf16 resolution are lost; raise `adamEps`), and the version is
  saved in bf16 (its safetensors and config.json say so; a later float32 step loads it upcast). A LoRA
  adapter stays float32 on the bf16 base (peft's default), so it trains and is saved in float32.
  bf16 is where the trainer's log-probs drift from the policy server's: the step's
  `metrics.rollout.logProbDiff*` measure it and `rolloutIsCap` (truncated importance sampling)
  corrects for it.
- `gradient_checkpointing`: `activation_checkpointing_enable(use_reentrant=False)` on the model
  (transformers 5's name for `gradient_checkpointing_enable`, which it deprecates; on a peft model
  the call reaches the base model's layers, the adapter's included). Activations are recomputed in
  the backward pass instead of kept: the same gradients (dropout's RNG state is replayed), less
  memory, about a third more compute. The non-reentrant form needs no input that requires grad, so
  LoRA (frozen embeddings) works as it is (transformers still hooks `enable_input_require_grads` on
  the embeddings, harmless). Only training forward passes checkpoint (the layers check
  `self.training`); the log-prob passes under no_grad are unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from .batch import BatchTrajectory, TokenizedTrajectory, tokenize_trajectory
from .errors import BadInputError
from .family import FamilySource, ModelOptions, ModuleFamily, register_family
from .vision import VisionRenderer


# A fresh adapter on a vision-language model adapts its language model's linear layers only (the
# vision tower stays as it is, and servers such as vLLM load adapters for the language model).
VLM_LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def token_log_probs(model: Any, ids: torch.Tensor, attn: torch.Tensor, with_entropy: bool = False,
                    temperature: float = 1.0, **inputs: Any):
    """Per-token log-probs (and entropies) of softmax(logits / temperature); `inputs` are the
    model's other inputs (a vision-language model's pixel values, grids and token types)."""
    text = {} if "inputs_embeds" in inputs else {"input_ids": ids}
    logits = model(**text, attention_mask=attn, **inputs).logits[:, :-1, :].float() / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    # (the model may run on another device than `ids`: a sharded update moves its inputs to the GPU)
    logp = torch.gather(logp_all, 2, ids[:, 1:, None].to(logp_all.device)).squeeze(-1)
    if not with_entropy:
        return logp, None
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


def _is_vision_language(folder: Path) -> bool:
    import json

    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "vision_config" in config


def _model_class(folder: Path):
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    return AutoModelForImageTextToText if _is_vision_language(folder) else AutoModelForCausalLM


class HfFamily(ModuleFamily):
    def __init__(self, model: Any, tokenizer: Any, kind: str, base_model: str | None,
                 renderer: VisionRenderer | None = None, options: ModelOptions = ModelOptions()) -> None:
        self.model, self.tokenizer, self.kind, self.base_model = model, tokenizer, kind, base_model
        self.renderer, self.options = renderer, options
        if options.gradient_checkpointing:
            _enable_gradient_checkpointing(model)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._reference: Any = None

    @classmethod
    def load(
        cls, folder: Path, ref_uri: str, manifest: dict | None, lora: Any, fetch_folder: Callable[[str], Path],
        fetch_bytes: Callable[[str], bytes] | None = None, options: ModelOptions = ModelOptions(),
    ) -> "HfFamily":
        """Version `ref_uri` (downloaded to `folder`): full weights, or a LoRA adapter whose base model
        the manifest names (fetched with `fetch_folder`); with `lora.rank` a fresh adapter goes on a
        full model. `options`: the dtype to load in and gradient checkpointing (module docstring)."""
        from transformers import AutoTokenizer

        dtype = options.torch_dtype

        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
            if manifest and manifest["kind"] == "lora":
                from peft import PeftModel

                base_uri = manifest["baseModel"]
                base_folder = fetch_folder(base_uri)
                base = _model_class(base_folder).from_pretrained(base_folder, dtype=dtype)
                renderer = _renderer(base_folder, tokenizer, base, fetch_bytes)
                # (autocast_adapter_dtype, peft's default: the adapter stays float32 on a bf16 base)
                model = PeftModel.from_pretrained(base, folder, is_trainable=True, autocast_adapter_dtype=True)
                return cls(model, tokenizer, "lora", base_uri, renderer, options)
            model = _model_class(folder).from_pretrained(folder, dtype=dtype)
        except (OSError, ValueError, KeyError) as err:
            raise BadInputError(f"policy {ref_uri} is not a loadable Hugging Face folder: {err}") from err
        renderer = _renderer(folder, tokenizer, model, fetch_bytes)
        if lora.rank > 0:
            from peft import LoraConfig, get_peft_model

            # A fresh adapter on the full model; its initialisation draws from the seeded RNG.
            targets = lora.target_modules
            if renderer is not None and targets == "all-linear":
                targets = VLM_LORA_TARGETS
            cfg = LoraConfig(
                r=lora.rank,
                lora_alpha=lora.alpha,
                lora_dropout=lora.dropout,
                target_modules=targets,
                task_type="CAUSAL_LM",
            )
            peft_model = get_peft_model(model, cfg, autocast_adapter_dtype=True)
            return cls(peft_model, tokenizer, "lora", ref_uri, renderer, options)
        return cls(model, tokenizer, "full", None, renderer, options)

    def tokenize(self, t: BatchTrajectory, max_length: int) -> TokenizedTrajectory:
        return tokenize_trajectory(self.tokenizer, t, max_length, self.renderer)

    @staticmethod
    def width(item: TokenizedTrajectory) -> int:
        """Positions of `log_probs` that belong to the item."""
        return len(item.input_ids) - 1

    @staticmethod
    def policy_tokens(item: TokenizedTrajectory) -> int:
        return sum(item.loss_mask)

    @staticmethod
    def sequence_length(item: TokenizedTrajectory) -> int:
        """The item's row in a padded forward pass: its tokens, image tokens included."""
        return len(item.input_ids)

    def _pad(self, items: list[TokenizedTrajectory]):
        n = max(len(s.input_ids) for s in items)
        ids = torch.full((len(items), n), self.tokenizer.pad_token_id, dtype=torch.long)
        attn = torch.zeros((len(items), n), dtype=torch.long)
        mask = torch.zeros((len(items), n), dtype=torch.float32)
        for i, s in enumerate(items):
            ids[i, : len(s.input_ids)] = torch.tensor(s.input_ids)
            attn[i, : len(s.input_ids)] = 1
            mask[i, : len(s.loss_mask)] = torch.tensor(s.loss_mask, dtype=torch.float32)
        # Token t is predicted from positions < t: log-probs align with tokens 1..n-1.
        return ids, attn, mask[:, 1:]

    def _inputs(self, items: list[TokenizedTrajectory], ids: torch.Tensor, attn: torch.Tensor,
                model: Any = None) -> dict[str, Any]:
        """A vision-language model's other inputs for the padded batch `ids`: every item's images
        in order, and the token types M-RoPE needs (padding counts as text). `model`: the model they
        are for (default: the policy; the KL reference model builds its own embeddings)."""
        if self.renderer is None:
            return {}
        images = [img for s in items for img in s.images]
        if not images:
            return {}
        types = torch.zeros_like(ids, dtype=torch.int32)
        for i, s in enumerate(items):
            types[i, : len(s.token_types)] = torch.tensor(s.token_types, dtype=torch.int32)
        pixel_values = torch.cat([img.pixel_values for img in images])
        grid = torch.stack([img.grid_thw for img in images])
        placeholders = {self.renderer.image_token_id, self.renderer.video_token_id} - {None}
        sampled_placeholder = bool((torch.isin(ids, torch.tensor(sorted(placeholders))) & (types == 0)).any())
        if not sampled_placeholder:
            return {"pixel_values": pixel_values, "image_grid_thw": grid, "mm_token_type_ids": types}
        return self._embedded(self.model if model is None else model, ids, attn, types, pixel_values, grid)

    def _embedded(self, model: Any, ids: torch.Tensor, attn: torch.Tensor, types: torch.Tensor,
                  pixel_values: torch.Tensor, grid: torch.Tensor) -> dict[str, Any]:
        """The inputs of a batch where the policy sampled an image/video placeholder token as text:
        the model would take every such id for an image slot, so the image features are put at the
        rendered slots (types == 1) by hand, the sampled ones keep their text embedding (as the
        server did), and the M-RoPE positions come from the rendered types. Uses the Qwen-VL model's
        own `get_image_features` and `get_rope_index`."""
        core = model.get_base_model().model if hasattr(model, "get_base_model") else model.model
        embeds = core.get_input_embeddings()(ids)
        features = torch.cat(core.get_image_features(pixel_values, grid).pooler_output).to(embeds.dtype)
        slots = (types == 1).unsqueeze(-1).expand_as(embeds)
        embeds = embeds.masked_scatter(slots, features)
        positions, _ = core.get_rope_index(ids, types, image_grid_thw=grid, attention_mask=attn)
        return {"inputs_embeds": embeds, "position_ids": positions}

    def log_probs(self, items: list[TokenizedTrajectory], with_entropy: bool = False, temperature: float = 1.0):
        """(log-probs [B, T], mask [B, T], entropy [B, T] | None), T = longest sequence - 1; at the
        sampling temperature."""
        ids, attn, mask = self._pad(items)
        lp, ent = token_log_probs(self.model, ids, attn, with_entropy, temperature, **self._inputs(items, ids, attn))
        return lp, mask, ent

    def reference_log_probs(self, items: list[TokenizedTrajectory], reference_folder: Callable[[], Path],
                            temperature: float = 1.0):
        """Log-probs under the run's reference policy: the base model (LoRA: adapter disabled), or
        the run's version 0, loaded once and frozen."""
        ids, attn, _ = self._pad(items)
        if self.kind == "lora":
            with self.model.disable_adapter():
                inputs = self._inputs(items, ids, attn)
                return token_log_probs(self.model, ids, attn, temperature=temperature, **inputs)[0]
        if self._reference is None:
            folder = reference_folder()
            m = _model_class(folder).from_pretrained(folder, dtype=self.options.torch_dtype)
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)
            self._reference = m
        inputs = self._inputs(items, ids, attn, self._reference)
        return token_log_probs(self._reference, ids, attn, temperature=temperature, **inputs)[0]

    def weights(self) -> dict[str, torch.Tensor]:
        if self.kind == "lora":
            from peft import get_peft_model_state_dict

            return get_peft_model_state_dict(self.model)
        return super().weights()

    def save(self, out_dir: Path) -> None:
        self.model.save_pretrained(out_dir, safe_serialization=True)
        self.tokenizer.save_pretrained(out_dir)
        if self.renderer is not None and self.kind == "full":
            # a full version is a servable model folder: it keeps the image processor and template
            self.renderer.image_processor.save_pretrained(out_dir)


def _enable_gradient_checkpointing(model: Any) -> None:
    """Activation checkpointing of the model's layers, non-reentrant (module docstring)."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise BadInputError(
            f"gradientCheckpointing: {type(model).__name__} does not support gradient checkpointing"
        )
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:  # older transformers, before the rename
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    # a KV cache is of no use to the trainer (and transformers warns with checkpointing); a
    # vision-language model's language model reads its text_config's
    config = getattr(model, "config", None)
    for c in (config, getattr(config, "text_config", None)):
        if c is not None and getattr(c, "use_cache", None):
            c.use_cache = False


def _renderer(folder: Path, tokenizer: Any, model: Any,
              fetch_bytes: Callable[[str], bytes] | None) -> VisionRenderer | None:
    if not _is_vision_language(folder):
        return None

    def no_store(uri: str) -> bytes:
        raise BadInputError(f"trajectory image {uri}: this policy was loaded without a store to fetch images from")

    return VisionRenderer(folder, tokenizer, model.config, fetch_bytes or no_store)


def handles(folder: Path, model_type: str | None) -> bool:
    """A peft adapter folder, or a config.json whose model_type transformers knows."""
    if (folder / "adapter_config.json").is_file():
        return True
    if model_type is None:
        return False
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return model_type in CONFIG_MAPPING_NAMES


def load(source: FamilySource) -> HfFamily:
    return HfFamily.load(source.folder, source.uri, source.manifest, source.lora, source.fetch_folder,
                         source.fetch_bytes, source.options)


register_family(handles, load, name="huggingface", default=True)
