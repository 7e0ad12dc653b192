"""The nano policy (nano/policy_model.py, model_type `segflow-nano-policy`) as a trainer policy family.

A plugin of the trainer (trainer/segflow_trainer/family.py): the trainer worker loads it when
started with `SEGFLOW_TRAINER_FAMILIES=nano.trainer_family` and the repository root on PYTHONPATH,
and it needs pillow in the trainer's environment (trainer/requirements.txt carries it for this).

The nano policy is multimodal: its log-probabilities depend on the trajectory's images, so unlike the
text-only Hugging Face path this family reads each message's images from S3 (the batch's per-message
`images` refs, the very bytes the rollout sent to the policy server) and rebuilds the conversation
exactly as nano/policy_server.py encodes it: text pieces and image parts in order (`<image>`
placeholders become the image parts, as core/rollout/agent-loop.ts `toPolicyMessages` orders them).

Token roles, from encoding the conversation prefix by prefix (each message extends the previous
ones): the prompt and observations are context (mask 0); an assistant turn is `<assistant>` (header,
mask 0), its content (mask 1: what the policy generated) and `<eos>` (mask 0: the server appends it
to every past turn, the policy does not sample it there).

A nano "version" is a full checkpoint (the model is small), written with `pm.save`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from segflow_trainer.batch import BatchTrajectory
from segflow_trainer.errors import BadInputError
from segflow_trainer.family import FamilySource, ModuleFamily, register_family

from . import policy_model

MODEL_TYPE = "segflow-nano-policy"


@dataclass
class NanoItem:
    prompt: Any  # policy_model.Prompt of the whole (possibly truncated) trajectory
    response: list[int]  # indices into prompt.ids of the policy's tokens
    truncated: bool
    # The server's log-prob of each response token (None where it gave none, or where its sampled ids
    # differ from the retokenized text), indexed as update.py reads every family's: entry j + 1 is
    # that of log-prob position j (here the j-th response token). None: no turn carried log-probs.
    rollout_log_probs: list[float | None] | None = None
    sampled_turns: int = 0
    retokenized_turns: int = 0

    @property
    def response_tokens(self) -> int:
        return len(self.response)


def _server_log_probs(message: dict, content: list[int]) -> list[float | None] | None:
    """The server's log-probs of an assistant turn's content tokens, when the ids it sampled are the
    content the text retokenizes to (a trailing `<eos>` the server counts is left out); None when it
    gave none or they differ (the text is trained on, without the server's log-probs)."""
    ids, lps = message.get("tokenIds"), message.get("logprobs")
    if not ids or not lps or len(lps) != len(ids) or ids[: len(content)] != content or len(ids) > len(content) + 1:
        return None
    return [float(x) for x in lps[: len(content)]]


class NanoFamily(ModuleFamily):
    kind = "full"
    base_model = None

    def __init__(self, folder: Path, fetch_bytes: Callable[[str], bytes]) -> None:
        self.pm = policy_model
        try:
            self.model = self.pm.load(str(folder))
        except (FileNotFoundError, ValueError, KeyError, RuntimeError) as err:
            raise BadInputError(f"nano policy {folder} does not load: {err}") from err
        self._fetch = fetch_bytes
        self._images: dict[str, Any] = {}
        self._reference: Any = None

    # -- batch -> items
    def _image(self, uri: str):
        from PIL import Image

        img = self._images.get(uri)
        if img is None:
            try:
                img = Image.open(io.BytesIO(self._fetch(uri)))
                img.load()
            except OSError as err:
                raise BadInputError(f"trajectory image {uri} is not a readable image: {err}") from err
            self._images[uri] = img
        return img

    def _openai(self, m: dict) -> dict:
        refs = m.get("images") or []
        if not refs:
            return {"role": m["role"], "content": m["content"]}
        pieces = m["content"].split("<image>")
        parts: list[dict] = []
        for i, text in enumerate(pieces):
            if text:
                parts.append({"type": "text", "text": text})
            if i < len(pieces) - 1 and i < len(refs):
                parts.append({"type": "image_url", "image_url": {"url": self._image(refs[i]["uri"])}})
        for ref in refs[len(pieces) - 1 :]:
            parts.append({"type": "image_url", "image_url": {"url": self._image(ref["uri"])}})
        return {"role": m["role"], "content": parts}

    def tokenize(self, t: BatchTrajectory, max_length: int) -> NanoItem:
        pm, model = self.pm, self.model
        msgs = [self._openai(m) for m in t.messages]
        first = next(i for i, m in enumerate(msgs) if m["role"] == "assistant")
        prev = pm.encode_conversation(model, msgs[:first], add_generation_prompt=False)
        response: list[int] = []
        server: list[float | None] = []
        sampled = retokenized = 0
        for i in range(first, len(msgs)):
            cur = pm.encode_conversation(model, msgs[: i + 1], add_generation_prompt=False)
            if cur.ids[: len(prev.ids)] != prev.ids:
                raise BadInputError(f"trajectory {t.trajectory_id}: message {i} does not extend the conversation before it")
            if msgs[i]["role"] == "assistant":
                # <assistant> content… <eos>: only the content is the policy's sampled tokens
                content = list(range(len(prev.ids) + 1, len(cur.ids) - 1))
                response += content
                lps = _server_log_probs(t.messages[i], [cur.ids[r] for r in content])
                sampled += lps is not None
                retokenized += lps is None and bool(t.messages[i].get("tokenIds"))
                server += lps if lps is not None else [None] * len(content)
            prev = cur
        limit = min(max_length, model.config.max_len)
        prompt, truncated = prev, False
        if prompt.positions() > limit:
            prompt, truncated = self._truncate(prompt, limit, t)
            keep = [k for k, r in enumerate(response) if r < len(prompt.ids)]
            response, server = [response[k] for k in keep], [server[k] for k in keep]
        has_server = any(x is not None for x in server)
        return NanoItem(prompt, response, truncated, [None] + server if has_server else None, sampled, retokenized)

    def _truncate(self, p: Any, limit: int, t: BatchTrajectory) -> tuple[Any, bool]:
        """The longest prefix of whole tokens (an image counts with its grid) within `limit` positions."""
        ends = p.offsets()[1:] + [p.positions()]  # where each token's positions end
        keep = sum(1 for e in ends if e <= limit)  # ends only grow: a prefix
        k = p.ids[:keep].count(self.pm.IMG_ID)
        assistant = self.model.tok.id("<assistant>")
        first_assistant = p.ids.index(assistant) if assistant in p.ids else len(p.ids)
        if keep <= first_assistant:
            raise BadInputError(
                f"trajectory {t.trajectory_id}: its prompt alone is longer than {limit} positions "
                "(max_length / the nano policy's max_len)"
            )
        return self.pm.Prompt(p.ids[:keep], p.images[:k]), True

    # -- the math update.py needs
    def log_probs(self, items: list[NanoItem], with_entropy: bool = False, temperature: float = 1.0):
        """(log-probs [B, T], mask [B, T], entropy [B, T] | None) over each item's response tokens, at
        the sampling temperature."""
        lp, ent = self.pm.token_stats(self.model, [(it.prompt, it.response) for it in items], temperature)
        mask = torch.zeros_like(lp)
        for j, it in enumerate(items):
            mask[j, : it.response_tokens] = 1.0
        return lp, mask, (ent if with_entropy else None)

    @staticmethod
    def width(item: NanoItem) -> int:
        return item.response_tokens

    @staticmethod
    def policy_tokens(item: NanoItem) -> int:
        return item.response_tokens

    @staticmethod
    def sequence_length(item: NanoItem) -> int:
        """The item's positions in a forward pass (an image counts with its grid)."""
        return item.prompt.positions()

    def reference_log_probs(self, items: list[NanoItem], reference_folder: Callable[[], Path],
                            temperature: float = 1.0) -> torch.Tensor:
        """Log-probs under the run's reference policy (its version 0), loaded once and frozen."""
        if self._reference is None:
            self._reference = self.pm.load(str(reference_folder()))
            for p in self._reference.parameters():
                p.requires_grad_(False)
        return self.pm.token_stats(self._reference, [(it.prompt, it.response) for it in items], temperature)[0]

    def save(self, out_dir: Path) -> None:
        self.pm.save(self.model, str(out_dir))


def load(source: FamilySource) -> NanoFamily:
    manifest = source.manifest
    if source.lora.rank > 0 or (manifest and manifest["kind"] == "lora"):
        raise BadInputError(f"policy {source.uri} is a nano policy: it is trained in full, not through LoRA (set lora.rank 0)")
    if not source.options.is_default:
        raise BadInputError(
            f"policy {source.uri} is a nano policy: it trains in float32 without gradient checkpointing "
            f"(got dtype {source.options.dtype!r}, gradientCheckpointing {source.options.gradient_checkpointing})"
        )
    return NanoFamily(source.folder, source.fetch_bytes)


register_family(MODEL_TYPE, load, name="nano")
