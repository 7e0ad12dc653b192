"""A Hugging Face vision-language policy's inputs, as its server (vLLM) builds them for a chat request.

A trajectory message with images becomes the content list the rollout sent (core/rollout/agent-loop.ts
`toPolicyMessages`: `<image>` placeholders become image parts in order, empty text pieces are
dropped, extra images follow); the policy's chat template renders it with one image placeholder
token per image (Qwen-VL: `<|vision_start|><|image_pad|><|vision_end|>`), and the placeholder is
expanded to the image's token count from the image processor's patch grid, as the model's processor
does. The pixel values, patch grids and `mm_token_type_ids` (1 on image tokens) go to the model's
forward pass: without the token types, Qwen-VL's M-RoPE positions are wrong for every token after an
image, silently (../shared/notes/real-models-on-cpu.md measured 0.11 nats off). The types come from
the rendering, not from the ids: a policy may sample a placeholder token (`<|image_pad|>`) as text,
and the server embedded it as text (hf_family.py feeds such sequences as embeddings).

Why not the model's own `AutoProcessor`: Qwen-VL's processor class also builds a video processor,
which needs torchvision, and no torchvision build for this torch exists on this machine kind. The
expansion it would do is one line here (`image_tokens`); the image processor itself is the family's
(`AutoImageProcessor`, the PIL backend without torchvision).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .errors import BadInputError


@dataclass
class ImageInput:
    """One image as the model takes it."""

    uri: str
    pixel_values: torch.Tensor  # [patches, channels * temporal * patch²]
    grid_thw: torch.Tensor  # [3]
    tokens: int  # placeholder tokens it expands to


@dataclass
class Rendered:
    ids: list[int]
    images: list[ImageInput] = field(default_factory=list)
    types: list[int] | None = None
    """Per id: 1 where an image's features go (an expanded placeholder), 0 for text; None: all text."""


def to_content_parts(message: dict[str, Any]) -> str | list[dict[str, Any]]:
    """The message's content as the rollout sent it: a string, or text and image parts in order."""
    refs = message.get("images") or []
    if not refs:
        return message["content"]
    pieces = message["content"].split("<image>")
    parts: list[dict[str, Any]] = []
    for i, text in enumerate(pieces):
        if text:
            parts.append({"type": "text", "text": text})
        if i < len(pieces) - 1 and i < len(refs):
            parts.append({"type": "image", "uri": refs[i]["uri"]})
    for ref in refs[len(pieces) - 1 :]:
        parts.append({"type": "image", "uri": ref["uri"]})
    return parts


class VisionRenderer:
    """Renders trajectory messages to token ids and image inputs for one vision-language policy."""

    def __init__(self, folder: Path, tokenizer: Any, config: Any, fetch_bytes: Callable[[str], bytes]) -> None:
        from transformers import AutoImageProcessor

        try:
            self.image_processor = AutoImageProcessor.from_pretrained(folder)
        except (OSError, ValueError, TypeError) as err:
            raise BadInputError(f"policy folder {folder} has no loadable image processor: {err}") from err
        self.tokenizer = tokenizer
        self.image_token_id = _required_id(config, "image_token_id")
        self.video_token_id = getattr(config, "video_token_id", None)
        self.image_token = tokenizer.convert_ids_to_tokens(self.image_token_id)
        self.merge = int(getattr(self.image_processor, "merge_size", 1) or 1)
        self._fetch = fetch_bytes
        self._cache: dict[str, ImageInput] = {}

    def image(self, uri: str) -> ImageInput:
        """The image at `uri` through the image processor (cached: a frame recurs in every group member)."""
        hit = self._cache.get(uri)
        if hit is not None:
            return hit
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(self._fetch(uri))) as im:
                rgb = im.convert("RGB")
        except (UnidentifiedImageError, OSError) as err:
            raise BadInputError(f"trajectory image {uri} is not a readable image: {err}") from err
        out = self.image_processor(images=[rgb], return_tensors="pt")
        grid = out["image_grid_thw"][0]
        item = ImageInput(uri, out["pixel_values"], grid, int(grid.prod().item()) // (self.merge**2))
        self._cache[uri] = item
        return item

    def render(self, messages: list[dict[str, Any]], generation_prompt: bool) -> Rendered:
        """Token ids of `messages` through the chat template, each image placeholder expanded."""
        chat = [{"role": m["role"], "content": to_content_parts(m)} for m in messages]
        text = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=generation_prompt)
        images = [self.image(p["uri"]) for m in chat if isinstance(m["content"], list) for p in m["content"]
                  if p["type"] == "image"]
        pieces = text.split(self.image_token)
        if len(pieces) - 1 != len(images):
            raise BadInputError(
                f"the chat template rendered {len(pieces) - 1} image placeholders for {len(images)} images"
            )
        ids: list[int] = []
        types: list[int] = []
        for i, piece in enumerate(pieces):
            text = self.tokenizer.encode(piece, add_special_tokens=False)
            ids += text
            types += [0] * len(text)
            if i < len(images):
                ids += [self.image_token_id] * images[i].tokens
                types += [1] * images[i].tokens
        return Rendered(ids, images, types)


def cut_keeping_whole_images(types: list[int], images: list[ImageInput], limit: int) -> tuple[int, list[ImageInput]]:
    """Where to cut a sequence whose token `types` (1 where an image's features go) are given to at
    most `limit` tokens without splitting an image's tokens (the model needs every image it gets
    whole), and the images left before the cut. The types, not the ids, say where images are: a
    sampled placeholder token is text."""
    if len(types) <= limit:
        return len(types), images
    kept, pos = 0, 0
    for img in images:
        try:
            start = types.index(1, pos)
        except ValueError:
            break
        if start + img.tokens > limit:
            return start, images[:kept]
        kept, pos = kept + 1, start + img.tokens
    return limit, images[:kept]


def _required_id(config: Any, name: str) -> int:
    value = getattr(config, name, None)
    if value is None and hasattr(config, "get_text_config"):
        value = getattr(config.get_text_config(), name, None)
    if not isinstance(value, int):
        raise BadInputError(f"the policy's config has no {name}: not a vision-language model segflow can feed images")
    return value
