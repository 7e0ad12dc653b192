"""A tiny GPT-2-style causal LM with a byte-level BPE tokenizer trained locally (no downloads), in
Hugging Face `save_pretrained` format, for tests: small enough to train on a CPU
in seconds, real enough that the trainer updates it exactly like a hub model.

    python -m segflow_trainer.tiny_model --out DIR [--corpus FILE ...] [--seed 0] [--vocab 1024]

The chat template marks turns with <|system|>, <|user|>, <|assistant|> and ends each with <|end|>
(also the EOS token), so the trainer can tell generated tokens from prompt and observations.
"""

from __future__ import annotations

import argparse
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL = ["<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"]

DEFAULT_CORPUS = [
    "<thinking> </thinking> <search> </search> <information> </information> <keyframe> </keyframe>",
    '<answer> {"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y]} </answer>',
    '{"name": "text_search", "query": "..."} {"name": "image_search", "query": "..."}',
    "Please find the target object in the provided frames. frame 0 <image> frame 1 <image>",
    "Here is the high-res version of your selected frame: <image>",
    "0 1 2 3 4 5 6 7 8 9 10 100 200 250 450 500 700 800 1000",
]


def build_tiny_model(
    out: Path,
    corpus: list[str] | None = None,
    seed: int = 0,
    vocab_size: int = 1024,
    n_layer: int = 2,
    n_embd: int = 32,
    n_head: int = 2,
    n_positions: int = 2048,
) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    texts = DEFAULT_CORPUS + (corpus or [])
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|end|>",
        bos_token="<|end|>",
        pad_token="<|pad|>",
        additional_special_tokens=SPECIAL[2:],
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(hf_tok),
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=hf_tok.eos_token_id,
        eos_token_id=hf_tok.eos_token_id,
        pad_token_id=hf_tok.pad_token_id,
    )
    model = GPT2LMHeadModel(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    hf_tok.save_pretrained(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--corpus", nargs="*", type=Path, default=[], help="text files the BPE is trained on")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--positions", type=int, default=2048)
    ap.add_argument("--upload", help="also upload the folder to this s3:// prefix")
    a = ap.parse_args()
    corpus = [p.read_text() for p in a.corpus]
    out = build_tiny_model(a.out, corpus, seed=a.seed, vocab_size=a.vocab, n_positions=a.positions)
    if a.upload:
        from .settings import load_settings
        from .store import Store

        Store(load_settings().s3).upload_folder(out, a.upload)
    print(out)


if __name__ == "__main__":
    main()
