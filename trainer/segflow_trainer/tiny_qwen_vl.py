"""A tiny Qwen2.5-VL, built offline and deterministically, in the Hugging Face layout a real
checkpoint has: the real architecture (`Qwen2_5_VLForConditionalGeneration`: a windowed ViT with
2×2 patch merging, M-RoPE text decoder) with tiny dims and seeded random weights, a byte-level BPE
trained here with the family's special tokens, the family's chat template and its image processor
config. It stands in for the 3B/7B checkpoints users bring (no hub is reachable here); nothing in
segflow special-cases it: vLLM serves it and the trainer's Hugging Face family trains it as they
would the real ones.

    python -m segflow_trainer.tiny_qwen_vl --out DIR [--seed 0] [--upload s3://bucket/prefix/]

Random weights generate random text: rollouts end at their token budget, which is what the
consistency checks need (every sampled token has a server log-prob and a trainer log-prob).
"""

from __future__ import annotations

import argparse
from pathlib import Path

# Qwen2-VL / Qwen2.5-VL's special tokens, in the order the family's vocabularies list them.
SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# The family's chat template: string contents verbatim; a content list renders its text parts and
# one `<|vision_start|><|image_pad|><|vision_end|>` per image part (the processor expands the pad
# to the image's merged-patch count); a default system turn when the first message is not one.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# What the BPE is trained on: the turn protocol's tags and JSON, so its merges are not all noise.
CORPUS = [
    "<think> </think> <search> </search> <information> </information> <keyframe> </keyframe>",
    '<answer> {"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y]} </answer>',
    '{"name": "text_search", "query": "..."} {"name": "image_search", "query": "..."}',
    "Please find the target object in the provided frames. frame 0 frame 1 frame 2 frame 3",
    "Here is the high-res version of your selected frame:",
    "0 1 2 3 4 5 6 7 8 9 10 100 200 250 450 500 700 800 1000",
    "You are a helpful assistant. Which car won the 2025 Qatar Grand Prix?",
]

# Images: 14-px patches merged 2×2, so 28 px per token side; at most 16×16 tokens' worth of pixels
# (a 448×448 frame is 256 tokens), at least 4×4.
PATCH, MERGE, TEMPORAL_PATCH = 14, 2, 2
MIN_PIXELS = (4 * PATCH * MERGE) ** 2
MAX_PIXELS = (16 * PATCH * MERGE) ** 2


def build_tiny_qwen_vl(out: Path, seed: int = 0, vocab_size: int = 1024, max_positions: int = 8192) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLImageProcessorPil,
    )

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        CORPUS,
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=SPECIAL,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL[1:],
        model_max_length=max_positions,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL}

    text_hidden, heads, head_dim = 128, 2, 64
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": text_hidden,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": heads,
            "num_key_value_heads": 1,
            "max_position_embeddings": max_positions,
            "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0,
            # M-RoPE: the rotary half-dims given to (time, height, width); they sum to head_dim / 2
            "rope_scaling": {"type": "mrope", "mrope_section": [8, 12, 12]},
            # untied, as Qwen2.5-VL-7B (the 3B ties them; vLLM 0.32's in-place reload of full weights
            # leaves a tied LM head stale, so segflow refuses that sync: activities/training/activities.ts)
            "tie_word_embeddings": False,
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_heads": 2,
            "patch_size": PATCH,
            "spatial_merge_size": MERGE,
            "temporal_patch_size": TEMPORAL_PATCH,
            "window_size": 112,
            "fullatt_block_indexes": [1],
            "out_hidden_size": text_hidden,
            "in_channels": 3,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )
    assert head_dim == text_hidden // heads
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32)
    # A wider init than the default 0.02, so that log-probs are not all uniform (the consistency
    # checks then compare distinct numbers, not log(1/V) everywhere).
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.2 if "embed_tokens" in name else 0.08)
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=MIN_PIXELS,
        max_pixels=MAX_PIXELS,
        patch_size=PATCH,
        temporal_patch_size=TEMPORAL_PATCH,
        merge_size=MERGE,
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    image_processor.save_pretrained(out)
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--upload", help="also upload the folder to this s3:// prefix")
    a = ap.parse_args()
    out = build_tiny_qwen_vl(a.out, seed=a.seed)
    if a.upload:
        from .settings import load_settings
        from .store import Store

        Store(load_settings().s3).upload_folder(out, a.upload)
    print(out)


if __name__ == "__main__":
    main()
