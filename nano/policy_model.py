"""The nano policy: a tiny multimodal causal transformer that writes the Seg-ReSearch protocol.

Interface for the trainer (trainer/ imports this module; see nano/README.md):
  load(dir) -> NanoPolicy                 a checkpoint folder: config.json + model.safetensors +
                                           tokenizer.json (Hugging Face save_pretrained layout)
  save(model, dir)                         writes that folder
  encode_conversation(model, messages)     chat messages (OpenAI shape, images as PIL or data URLs)
                                           -> Prompt (token ids + image tensors)
  logprobs(model, batch) -> Tensor[B, L]   per-token log-probabilities of response tokens
                                           (batch: list of (Prompt of the full context, response
                                           token positions)); differentiable, for PPO

Architecture (why: it must look at the images, learn the format in a couple of CPU minutes and
stay a real token-level policy whose log-probabilities PPO can move):
- tokens are "pieces" (nano/tokenizer in this file): protocol constants (`<thinking>`,
  ` {"name": "text_search", "query": "`, …), lower-case words with and without a leading space,
  the numbers 0..1000 and single characters as a fallback, matched greedily (longest first);
- the system message becomes one token (search / non-search prompt) — the tiny model has no use
  for the prose — and every image becomes a grid of patch tokens from a small CNN: 4×4 for the
  frames of the first user message, 8×8 for later images (the high-res keyframe);
- a 2-layer pre-norm transformer over the sequence; the next-token distribution is one softmax
  whose number logits (0..1000) are shaped as a discretised Gaussian with a predicted mean and
  width, so coordinates are learnable by a small model and sampling noise is a meaningful,
  RL-tunable spread;
- a pointer: each position attends (one head, causally) over the keyframe patch tokens seen so
  far and reads off the attended cells' centre; a number's mean is that centre's x or y (a learnt
  gate) plus a learnt offset. Without it the model has to carry a position through the
  residual stream from a softmax over 64 cells, which a 2-layer model trained for minutes does not
  learn (measured: teacher-forced box IoU 0.05, none above 0.5); with it a coordinate is a
  choice of *where to look* (which object the question and the search results describe) plus a
  size, which is what the task asks of the policy;
- numbers as inputs are a shared embedding plus a linear map of Fourier features of their value
  (not 1001 free embeddings, most of which the warm-up never trains: the coordinates the policy
  writes itself would otherwise perturb the ones after them).
"""
from __future__ import annotations

import base64
import functools
import io
import json
import math
import os
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file

SPECIALS = ["<pad>", "<eos>", "<sys_search>", "<sys_plain>", "<user>", "<assistant>", "<img>", "<unk>"]
IMG_ID = SPECIALS.index("<img>")  # every tokenizer starts with SPECIALS (checked in Tokenizer)
PIECES = [
    "<thinking> ", " </thinking>", "\n", "<search> ", ' {"name": "text_search", "query": "',
    '"} </search>', "<keyframe> ", " </keyframe>", '<answer> {"bbox_2d": [', ", ", '], "point_2d": [',
    "]} </answer>", "<information>", "</information>", "(title: ", "high-res", "'",
]
NUM_MAX = 1000
IMG = 64
PTR_DIM = 32
PTR_SHARPEN = 4.0
NUM_FREQS = 8


class Tokenizer:
    def __init__(self, pieces: list[str]) -> None:
        if pieces[: len(SPECIALS)] != SPECIALS:
            raise ValueError(f"a nano tokenizer starts with the special pieces {SPECIALS}, this one with {pieces[: len(SPECIALS)]}")
        self.pieces = pieces
        self.index = {p: i for i, p in enumerate(pieces)}
        self.maxlen = max(len(p) for p in pieces)
        self.num0 = self.index["0"]

    @classmethod
    def build(cls, words: list[str]) -> "Tokenizer":
        pieces = list(SPECIALS) + list(PIECES)
        pieces += [str(n) for n in range(NUM_MAX + 1)]
        for w in sorted(set(words)):
            for v in (w, " " + w):
                if v not in pieces:
                    pieces.append(v)
        for c in (chr(i) for i in range(32, 127)):
            if c not in pieces:
                pieces.append(c)
        dedup: list[str] = []
        seen: set[str] = set()
        for p in pieces:
            if p not in seen:
                seen.add(p)
                dedup.append(p)
        return cls(dedup)

    def is_number(self, tid: int) -> bool:
        return self.num0 <= tid <= self.num0 + NUM_MAX

    def encode(self, text: str) -> list[int]:
        return list(self._encode(text))

    # A conversation's earlier texts come back at every turn (the chat template re-encodes the whole
    # history), so encodings are memoised per tokenizer: same text, same ids.
    @functools.lru_cache(maxsize=8192)  # noqa: B019 (tokenizers live as long as their model)
    def _encode(self, text: str) -> tuple[int, ...]:
        text = text.lower()
        out, i = [], 0
        while i < len(text):
            for n in range(min(self.maxlen, len(text) - i), 0, -1):
                tid = self.index.get(text[i : i + n])
                if tid is not None:
                    # a number piece must not cut a longer number ("12" of "123")
                    if self.is_number(tid) and i + n < len(text) and text[i + n].isdigit():
                        continue
                    out.append(tid)
                    i += n
                    break
            else:
                out.append(self.index["<unk>"])
                i += 1
        return tuple(out)

    def decode(self, ids: list[int]) -> str:
        return "".join(self.pieces[i] for i in ids if i >= len(SPECIALS))

    def id(self, piece: str) -> int:
        return self.index[piece]


@dataclass
class PolicyConfig:
    model_type: str = "segflow-nano-policy"
    vocab: int = 0
    d: int = 96
    layers: int = 2
    heads: int = 4
    max_len: int = 640
    seed: int = 0
    extra: dict = field(default_factory=dict)


class ImageEncoder(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.c3 = nn.Conv2d(32, d, 3, stride=2, padding=1)  # 64 -> 8x8
        self.pos8 = nn.Parameter(torch.randn(64, d) * 0.02)
        self.pos4 = nn.Parameter(torch.randn(16, d) * 0.02)
        # fixed cell coordinates in two channels of the fine (keyframe) grid: attending to the
        # target's cells hands its position to the number head linearly
        c = (torch.arange(8, dtype=torch.float32) + 0.5) / 4.0 - 1.0
        coord = torch.zeros(64, d)
        coord[:, 0] = c.repeat(8) * 2.0          # x of cell (row-major 8x8)
        coord[:, 1] = c.repeat_interleave(8) * 2.0  # y
        self.register_buffer("coord8", coord, persistent=False)

    def forward(self, x: torch.Tensor, fine: bool) -> torch.Tensor:  # x [N,3,64,64] -> [N,T,d]
        h = F.relu(self.c1(x))
        h = F.relu(self.c2(h))
        h = self.c3(h)
        if fine:
            return h.flatten(2).transpose(1, 2) + self.pos8 + self.coord8
        return F.avg_pool2d(h, 2).flatten(2).transpose(1, 2) + self.pos4


class Block(nn.Module):
    """Pre-norm causal self-attention + MLP. The parameters are nn.MultiheadAttention's (its
    in_proj/out_proj); the attention itself is F.scaled_dot_product_attention with is_causal, which
    the key/value cache of Decoder shares (qkv/finish). Sequences are right-padded, so causality
    already keeps every real position off the padding: no padding mask is needed."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.n1, self.n2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.att = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys, values [.., heads, L, d/heads] of x [.., L, d]."""
        split = lambda t: t.unflatten(-1, (self.heads, -1)).transpose(-3, -2)  # noqa: E731
        q, k, v = F.linear(self.n1(x), self.att.in_proj_weight, self.att.in_proj_bias).chunk(3, -1)
        return split(q), split(k), split(v)

    def finish(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The residual stream after attention output a [.., heads, L, d/heads]: + out_proj, + MLP."""
        x = x + self.att.out_proj(a.transpose(-3, -2).flatten(-2))
        return x + self.ff(self.n2(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x)
        return self.finish(x, F.scaled_dot_product_attention(q, k, v, is_causal=True))


class NanoPolicy(nn.Module):
    def __init__(self, config: PolicyConfig, tok: Tokenizer) -> None:
        super().__init__()
        self.config, self.tok = config, tok
        d = config.d
        self.emb = nn.Embedding(config.vocab, d)
        self.pos = nn.Parameter(torch.randn(config.max_len, d) * 0.02)
        self.img = ImageEncoder(d)
        self.blocks = nn.ModuleList([Block(d, config.heads) for _ in range(config.layers)])
        self.norm = nn.LayerNorm(d)
        self.num_head = nn.Linear(d, 4)  # number bias, offset, width, x-or-y gate of the pointer
        # numbers as inputs: one shared embedding plus a linear map of Fourier features of the
        # value, so a number the policy writes that the warm-up never showed (most of 0..1000)
        # still reads as "a number near v" and does not throw the next coordinates off
        self.num_in = nn.Linear(2 * NUM_FREQS + 1, d)
        self.register_buffer("num_freqs", 2 * math.pi * torch.arange(1, NUM_FREQS + 1, dtype=torch.float32), persistent=False)
        self.ptr_q = nn.Linear(d, PTR_DIM)
        self.ptr_k = nn.Linear(d, PTR_DIM)
        nums = torch.arange(NUM_MAX + 1, dtype=torch.float32)
        self.register_buffer("nums", nums, persistent=False)
        c = (torch.arange(8, dtype=torch.float32) + 0.5) * (NUM_MAX / 8)
        self.register_buffer("cells", torch.stack([c.repeat(8), c.repeat_interleave(8)], -1), persistent=False)

    # -- sequence assembly
    def token_embedding(self, ids: torch.Tensor) -> torch.Tensor:
        """Input embeddings [.., d] of token ids; numbers through num_in (see __init__)."""
        n0 = self.tok.num0
        is_num = (ids >= n0) & (ids <= n0 + NUM_MAX)
        v = ((ids - n0).clamp(0, NUM_MAX).to(self.num_freqs.dtype) / NUM_MAX).unsqueeze(-1)
        feats = torch.cat([torch.sin(v * self.num_freqs), torch.cos(v * self.num_freqs), v], -1)
        return torch.where(is_num.unsqueeze(-1), self.num_in(feats) + self.emb.weight[n0], self.emb(ids))

    def embed(self, prompts: list["Prompt"]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inputs [B,L,d], padding [B,L], keyframe patch index [B,L]: 0..63 on the positions of
        fine (keyframe) patches, -1 elsewhere)."""
        # every image of the batch through the CNN in two calls (fine keyframes, coarse frames)
        feats: dict[tuple[int, int], torch.Tensor] = {}
        for fine in (True, False):
            keys = [(b, i) for b, p in enumerate(prompts) for i, (_, f) in enumerate(p.images) if f == fine]
            if keys:
                out = self.img(torch.stack([prompts[b].images[i][0] for b, i in keys]).to(self.pos.dtype), fine)
                feats.update(zip(keys, out))
        seqs, cells = [], []
        for b, p in enumerate(prompts):
            ids = torch.tensor(p.ids, dtype=torch.long)
            x = self.token_embedding(ids)
            cell = torch.full((len(p.ids),), -1, dtype=torch.long)
            if p.images:
                parts, cparts, last = [], [], 0
                slots = [i for i, t in enumerate(p.ids) if t == IMG_ID]
                for k, (s, (_, fine)) in enumerate(zip(slots, p.images)):
                    f = feats[(b, k)]
                    parts += [x[last:s], f]
                    cparts += [cell[last:s], torch.arange(64) if fine else torch.full((f.shape[0],), -1)]
                    last = s + 1
                parts.append(x[last:])
                cparts.append(cell[last:])
                x, cell = torch.cat(parts), torch.cat(cparts)
            seqs.append(x)
            cells.append(cell)
        L = max(s.shape[0] for s in seqs)
        if L > self.config.max_len:
            raise ValueError(f"context of {L} positions exceeds the nano policy's max_len {self.config.max_len}")
        pad = torch.ones(len(seqs), L, dtype=torch.bool)
        out = torch.zeros(len(seqs), L, self.config.d, dtype=self.pos.dtype)
        cell_out = torch.full((len(seqs), L), -1, dtype=torch.long)
        for i, (s, c) in enumerate(zip(seqs, cells)):
            out[i, : s.shape[0]] = s
            pad[i, : s.shape[0]] = False
            cell_out[i, : c.shape[0]] = c
        return out + self.pos[:L], pad, cell_out

    def forward_hidden(self, prompts: list["Prompt"]) -> tuple[torch.Tensor, torch.Tensor]:
        """(final hidden states [B,L,d], pointer centres [B,L,2] in 0..1000 units)."""
        x, _, cell = self.embed(prompts)
        h, centre, _ = self.run_blocks(x, cell)
        return h, centre

    def forward_pointer(self, prompts: list["Prompt"]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """forward_hidden plus the pointer's attention [B,L,F] (row: a position, column: a keyframe
        patch position, in sequence order) — the SFT supervises it."""
        x, _, cell = self.embed(prompts)
        return self.run_blocks(x, cell, with_attention=True)

    def run_blocks(self, x: torch.Tensor, cell: torch.Tensor,
                   with_attention: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(h, centre, attention | None) of embedded, right-padded inputs x [B,L,d] (see embed)."""
        for b in self.blocks:
            x = b(x)
        h = self.norm(x)
        return (h, *self.pointer(h, cell, with_attention))

    def pointer(self, h: torch.Tensor, cell: torch.Tensor,
                with_attention: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Where each position looks: the attention-weighted centre [B,L,2] of the keyframe cells
        before it (0..1000 units), or the image centre where no keyframe has been seen yet; and,
        with_attention (only the warm-up's pointer loss reads it), that attention [B,L,F] over each
        row's F keyframe patch positions in sequence order (64 per keyframe; 0 on padding)."""
        B, L, _ = h.shape
        fine = cell >= 0
        nf = fine.sum(1)
        F_ = int(nf.max()) if B else 0
        # the positions of each row's patches first, in order (a stable sort), padded to F_
        kpos = torch.sort((~fine).to(torch.uint8), dim=1, stable=True).indices[:, :F_]  # [B,F]
        valid = torch.arange(F_).unsqueeze(0) < nf.unsqueeze(1)
        hk = h.gather(1, kpos.unsqueeze(-1).expand(-1, -1, h.shape[-1]))
        score = self.ptr_q(h) @ self.ptr_k(hk).transpose(1, 2) / math.sqrt(PTR_DIM)  # [B,L,F]
        # causal: a position sees the patches at or before it
        allowed = valid.unsqueeze(1) & (kpos.unsqueeze(1) <= torch.arange(L).view(1, L, 1))
        score = score.masked_fill(~allowed, -math.inf)
        seen = allowed.any(-1, keepdim=True)
        score = torch.where(seen, score, torch.zeros_like(score))
        att = torch.softmax(score, -1) * allowed if with_attention else None
        # the centre is read with a sharpened copy (att^k renormalised): the SFT teaches the
        # attention to spread over the target's cells, and the little mass it leaves on the other
        # 60 would otherwise pull every centre towards the middle of the image
        sharp = torch.softmax(score * PTR_SHARPEN, -1) * allowed
        xy = self.cells[cell.gather(1, kpos).clamp(min=0)]  # [B,F,2]
        centre = sharp @ xy
        return torch.where(seen, centre, torch.full_like(centre, NUM_MAX / 2)), att

    def number_mean(self, h: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        """The mean of the number distribution [..]: the pointer centre's x or y (a learnt gate:
        which coordinate is being written) plus a learnt offset (a half size, a lane's width to
        the side). Before a keyframe the centre is the image's middle and the mean is the offset
        alone (a frame id)."""
        _, off, _, gate = self.num_head(h).unbind(-1)
        g = torch.sigmoid(gate)
        return torch.sigmoid(off) * NUM_MAX - NUM_MAX / 2 + g * centre[..., 0] + (1 - g) * centre[..., 1]

    def logits(self, h: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        """Next-token logits [.., V]: tied embeddings; numbers as a discretised Gaussian around
        number_mean."""
        base = h @ self.emb.weight.t()
        nb, _, w, _ = self.num_head(h).unbind(-1)
        mu = self.number_mean(h, centre)
        sigma = 0.5 + F.softplus(w) * 20.0
        gauss = -((self.nums - mu.unsqueeze(-1)) ** 2) / (2 * sigma.unsqueeze(-1) ** 2)
        n0 = self.tok.num0
        return torch.cat([base[..., :n0], nb.unsqueeze(-1) + gauss, base[..., n0 + NUM_MAX + 1 :]], -1)


@dataclass
class Prompt:
    """Token ids with `<img>` slots and, in order, the image tensors [3,64,64] with their grid kind."""

    ids: list[int]
    images: list[tuple[torch.Tensor, bool]]

    def positions(self) -> int:
        return len(self.ids) + sum((64 if fine else 16) - 1 for _, fine in self.images)

    def offsets(self) -> list[int]:
        """The sequence position of each id (an `<img>` slot expands to its image's grid)."""
        pos, at, k = [], 0, 0
        for t in self.ids:
            pos.append(at)
            if t == IMG_ID:
                at += 64 if self.images[k][1] else 16
                k += 1
            else:
                at += 1
        return pos


def image_tensor(img: Image.Image) -> torch.Tensor:
    x = torch.frombuffer(bytearray(img.convert("RGB").resize((IMG, IMG), Image.BILINEAR).tobytes()), dtype=torch.uint8)
    return x.view(IMG, IMG, 3).permute(2, 0, 1).float() / 127.5 - 1.0


# Every turn of a rollout sends its whole history again, images included, and decoding + resizing
# them was the largest share of the policy server's CPU. Like vLLM's multimodal processor cache, the
# model input of a data-URL image is computed once per content (the URL is its content). http(s)
# URLs (presigned) are fetched every time; PIL images are the caller's to reuse. The cached tensors
# are shared: callers only read them (the model stacks copies).
@functools.lru_cache(maxsize=512)
def _data_url_tensor(url: str) -> torch.Tensor:
    return image_tensor(decode_image_url(url))


def url_image_tensor(url: str) -> torch.Tensor:
    return _data_url_tensor(url) if url.startswith("data:") else image_tensor(decode_image_url(url))


def decode_image_url(url: str) -> Image.Image:
    if url.startswith("data:"):
        b64 = url.split(",", 1)[1]
        return Image.open(io.BytesIO(base64.b64decode(b64)))
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as r:  # presigned S3 URLs
        return Image.open(io.BytesIO(r.read()))


def encode_conversation(model: NanoPolicy, messages: list[dict], add_generation_prompt: bool = True) -> Prompt:
    """OpenAI chat messages -> Prompt. Images: `image_url` parts (data/http URLs) or PIL images."""
    tok = model.tok
    ids: list[int] = []
    images: list[tuple[torch.Tensor, bool]] = []
    user_turns = 0
    for m in messages:
        role, content = m["role"], m["content"]
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if role == "system":
            text = "".join(p.get("text", "") for p in parts if p.get("type") == "text")
            ids.append(tok.id("<sys_search>" if "<tools>" in text else "<sys_plain>"))
            continue
        ids.append(tok.id("<user>" if role == "user" else "<assistant>"))
        if role == "user":
            user_turns += 1
        for p in parts:
            if p.get("type") == "text":
                # `<image>` placeholders in text are not images (the rollout sends image parts)
                ids += tok.encode(p["text"].replace("<image>", ""))
            elif p.get("type") == "image_url":
                url = p["image_url"]["url"] if isinstance(p["image_url"], dict) else p["image_url"]
                t = image_tensor(url) if isinstance(url, Image.Image) else url_image_tensor(url)
                images.append((t, user_turns > 1))
                ids.append(tok.id("<img>"))
        if role == "assistant":
            ids.append(tok.id("<eos>"))
    if add_generation_prompt:
        ids.append(tok.id("<assistant>"))
    return Prompt(ids, images)


def logprobs(model: NanoPolicy, batch: list[tuple[Prompt, list[int]]]) -> torch.Tensor:
    """Log-probabilities of response tokens. Each item is (the full sequence as a Prompt, the token
    indices within `prompt.ids` that are response tokens); returns [B, max responses] (0-padded)."""
    return token_stats(model, batch)[0]


def token_stats(model: NanoPolicy, batch: list[tuple[Prompt, list[int]]],
                temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probabilities, entropies) of the next-token distributions softmax(logits / temperature)
    at the response tokens, both [B, max responses] and 0-padded; one forward pass, differentiable."""
    h, centre = model.forward_hidden([p for p, _ in batch])
    return response_stats(model, h, centre, batch, temperature)


def response_stats(model: NanoPolicy, h: torch.Tensor, centre: torch.Tensor,
                   batch: list[tuple[Prompt, list[int]]], temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """token_stats from an existing forward pass (h, centre of forward_hidden on the batch's prompts)."""
    width = max(1, max(len(r) for _, r in batch))
    lps, ents = [], []
    for b, (p, resp) in enumerate(batch):
        pos = p.offsets()
        idx = torch.tensor([pos[i] - 1 for i in resp], dtype=torch.long)  # the position that predicts token i
        lp_all = F.log_softmax(model.logits(h[b, idx], centre[b, idx]) / temperature, -1)
        lp = lp_all.gather(-1, torch.tensor([p.ids[i] for i in resp], dtype=torch.long).unsqueeze(-1)).squeeze(-1)
        ent = -(lp_all.exp() * lp_all).sum(-1)
        lps.append(F.pad(lp, (0, width - lp.shape[0])))
        ents.append(F.pad(ent, (0, width - ent.shape[0])))
    return torch.stack(lps), torch.stack(ents)


def save(model: NanoPolicy, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out, "model.safetensors"))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(asdict(model.config), f, indent=1)
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump({"type": "segflow-nano-pieces", "pieces": model.tok.pieces}, f)


def load(path: str) -> NanoPolicy:
    for f in ("config.json", "model.safetensors", "tokenizer.json"):
        if not os.path.isfile(os.path.join(path, f)):
            raise FileNotFoundError(f"nano policy checkpoint {path} has no {f} (expected config.json, model.safetensors, tokenizer.json)")
    cfg = PolicyConfig(**json.load(open(os.path.join(path, "config.json"))))
    if cfg.model_type != "segflow-nano-policy":
        raise ValueError(f"{path}/config.json: model_type {cfg.model_type!r} is not segflow-nano-policy")
    tok = Tokenizer(json.load(open(os.path.join(path, "tokenizer.json")))["pieces"])
    model = NanoPolicy(cfg, tok)
    model.load_state_dict(load_file(os.path.join(path, "model.safetensors")))
    model.eval()
    return model


def new_model(tok: Tokenizer, seed: int) -> NanoPolicy:
    torch.manual_seed(seed)
    return NanoPolicy(PolicyConfig(vocab=len(tok.pieces), seed=seed), tok)


def sample_next(model: NanoPolicy, h: torch.Tensor, centre: torch.Tensor, temperature: float, top_p: float,
                top_k: int, gen: torch.Generator, allowed: torch.Tensor | None = None,
                processed: bool = False) -> tuple[int, float]:
    """One token from the last hidden state and pointer centre; returns (id, log-probability).
    `allowed` (a bool mask over the vocabulary) restricts the choice, as structured-output decoding
    does; the log-probability reported is the model's own, unconstrained one: of softmax(logits)
    (vLLM's raw_logprobs), or with `processed` of softmax(logits / temperature), the distribution
    the trainer scores a sampled token with (vLLM's processed_logprobs, top-k/top-p left out)."""
    logits = model.logits(h, centre)
    logp = F.log_softmax(logits / temperature if processed and temperature > 0 else logits, -1)
    if allowed is not None:
        logits = logits.masked_fill(~allowed, -math.inf)
    if temperature <= 0:
        t = int(torch.argmax(logits))
        return t, float(logp[t])
    z = logits / temperature
    if top_k and top_k > 0:
        kth = torch.topk(z, min(top_k, z.shape[-1])).values[-1]
        z = torch.where(z < kth, torch.full_like(z, -math.inf), z)
    probs = torch.softmax(z, -1)
    if top_p < 1.0:
        sp, si = torch.sort(probs, descending=True)
        keep = torch.cumsum(sp, 0) - sp < top_p
        mask = torch.zeros_like(probs, dtype=torch.bool)
        mask[si[keep]] = True
        probs = torch.where(mask, probs, torch.zeros_like(probs))
        probs = probs / probs.sum()
    t = int(torch.multinomial(probs, 1, generator=gen))
    return t, float(logp[t])


class Decoder:
    """Incremental decoding with a key/value cache: the prompt is run once (prefill), then each new
    token costs one position through the blocks instead of the whole sequence (the blocks' qkv and
    finish, attention over the cached keys and values; the pointer over the prompt's keyframe
    patches). test_policy_server checks it against the full forward pass. `h` and `centre` are the
    last position's hidden state and pointer centre."""

    def __init__(self, model: NanoPolicy, x: torch.Tensor, cell: torch.Tensor) -> None:
        self.model = model
        self.k: list[torch.Tensor] = []
        self.v: list[torch.Tensor] = []
        for b in model.blocks:
            q, k, v = b.qkv(x)
            self.k.append(k)
            self.v.append(v)
            x = b.finish(x, F.scaled_dot_product_attention(q, k, v, is_causal=True))
        h = model.norm(x)
        # the pointer looks at the keyframe patches; generated tokens are never patches, so their
        # keys and cell coordinates are fixed by the prompt
        fine = cell >= 0
        self.ptr_keys = model.ptr_k(h[fine])  # [F, PTR_DIM]
        self.ptr_xy = model.cells[cell[fine]]  # [F, 2]
        self.length = x.shape[0]
        self.h = h[-1]
        self.centre = self._centre(h[-1])

    def _centre(self, h: torch.Tensor) -> torch.Tensor:
        if self.ptr_keys.shape[0] == 0:
            return torch.full((2,), NUM_MAX / 2, dtype=h.dtype)
        score = (self.model.ptr_q(h) @ self.ptr_keys.t()) / math.sqrt(PTR_DIM)
        return torch.softmax(score * PTR_SHARPEN, -1) @ self.ptr_xy

    def step(self, token: int) -> None:
        """Append one token: its position's hidden state and centre become `h` and `centre`."""
        m = self.model
        x = m.token_embedding(torch.tensor([token])) + m.pos[self.length]  # [1, d]
        for i, b in enumerate(m.blocks):
            q, k, v = b.qkv(x)
            self.k[i] = torch.cat([self.k[i], k], -2)
            self.v[i] = torch.cat([self.v[i], v], -2)
            x = b.finish(x, F.scaled_dot_product_attention(q, self.k[i], self.v[i]))
        self.h = m.norm(x)[0]
        self.centre = self._centre(self.h)
        self.length += 1


@torch.no_grad()
def generate(model: NanoPolicy, prompt: Prompt, max_new: int, stops: list[str], temperature: float = 1.0,
             top_p: float = 1.0, top_k: int = -1, seed: int | None = None,
             include_stop: bool = True, constrained: bool = False,
             keyframes: list[int] | None = None, processed_logprobs: bool = False) -> dict:
    """Sample a turn as vLLM does: tokens until `<eos>`, a stop string in the decoded text, or
    `max_new` tokens. Returns {text, ids, logprobs, finish_reason, stop_reason}; `ids` and
    `logprobs` cover every generated token (the `<eos>` too, as vLLM counts it)."""
    grammar = ProtocolGrammar(model.tok, keyframes) if constrained else None
    gen = torch.Generator()
    gen.manual_seed(seed if seed is not None else int.from_bytes(os.urandom(4), "little"))
    x, _, cell = model.embed([prompt])
    dec = Decoder(model, x[0], cell[0])
    eos = model.tok.id("<eos>")
    ids: list[int] = []
    lps: list[float] = []
    text = ""
    for n in range(max_new):
        if n > 0:
            dec.step(ids[-1])
        if dec.length >= model.config.max_len:
            break
        t, lp = sample_next(model, dec.h, dec.centre, temperature, top_p, top_k, gen,
                            grammar.allowed() if grammar is not None else None, processed_logprobs)
        if grammar is not None:
            grammar.advance(t)
        ids.append(t)
        lps.append(lp)
        if t == eos:
            return {"text": text, "ids": ids, "logprobs": lps, "finish_reason": "stop", "stop_reason": None}
        text += model.tok.decode([t])
        hits = [(text.find(s), s) for s in stops if s and s in text]
        if hits:
            at, s = min(hits)
            text = text[: at + (len(s) if include_stop else 0)]
            return {"text": text, "ids": ids, "logprobs": lps, "finish_reason": "stop", "stop_reason": s}
    return {"text": text, "ids": ids, "logprobs": lps, "finish_reason": "length", "stop_reason": None}


class ProtocolGrammar:
    """The turn grammar of the Seg-ReSearch protocol as a token automaton (structured-output
    decoding): `<thinking> WORDS </thinking>\n` then one action —
    `<search> {"name": "text_search", "query": "WORDS"} </search>`, `<keyframe> N </keyframe>` or
    `<answer> {"bbox_2d": [N, N, N, N], "point_2d": [N, N]} </answer><eos>` — tokenised exactly as
    the tokenizer encodes those texts (what SFT trained on). The model makes every choice inside it
    (the action, the words, the numbers); the automaton only removes tokens that would break the
    format. Free text is capped (THINK_MAX / QUERY_MAX tokens). With `keyframes` (the frame ids the
    prompt offers) the keyframe number is a choice among them, as a JSON-schema enum would make it:
    the protocol only accepts a keyframe that is one of the sampled frames."""

    THINK_MAX = 24
    QUERY_MAX = 6

    def __init__(self, tok: Tokenizer, keyframes: list[int] | None = None) -> None:
        import re as _re

        self.tok = tok
        V = len(tok.pieces)
        self.V = V
        self.words = torch.tensor([bool(_re.fullmatch(r" ?[a-z]+", p)) for p in tok.pieces])
        self.think = self.words.clone()
        for c in (" ", ".", ",", ":"):
            if c in tok.index:
                self.think[tok.index[c]] = True
        self.nums = torch.zeros(V, dtype=torch.bool)
        self.nums[tok.num0 : tok.num0 + NUM_MAX + 1] = True
        self.frames = self.nums
        if keyframes:
            self.frames = torch.zeros(V, dtype=torch.bool)
            self.frames[[tok.num0 + k for k in keyframes if 0 <= k <= NUM_MAX]] = True
        enc = tok.encode
        self.actions = {
            tok.id("<search> "): enc('{"name": "text_search", "query": "') + ["Q"],
            tok.id("<keyframe> "): ["K", tok.id(" </keyframe>")],
            tok.id('<answer> {"bbox_2d": ['): ["#", tok.id(", "), "#", tok.id(", "), "#", tok.id(", "), "#",
                                               tok.id('], "point_2d": ['), "#", tok.id(", "), "#",
                                               tok.id("]} </answer>"), tok.id("<eos>")],
        }
        self.query_end = tok.id('"} </search>')
        self.think_end = tok.id(" </thinking>")
        self.plan: list = [tok.id("<thinking> "), "T", tok.id("\n"), "A"]
        self.n = 0

    def _mask(self, ids) -> torch.Tensor:
        m = torch.zeros(self.V, dtype=torch.bool)
        m[list(ids)] = True
        return m

    def allowed(self) -> torch.Tensor:
        if not self.plan:
            return torch.ones(self.V, dtype=torch.bool)  # done: the stop string ends the turn
        nxt = self.plan[0]
        if isinstance(nxt, int):
            return self._mask([nxt])
        if nxt == "#":
            return self.nums
        if nxt == "K":
            return self.frames
        if nxt == "A":
            return self._mask(self.actions)
        free, end, cap = (self.think, self.think_end, self.THINK_MAX) if nxt == "T" else (self.words, self.query_end, self.QUERY_MAX)
        if self.n >= cap:
            return self._mask([end])
        m = free.clone()
        if self.n > 0:
            m[end] = True
        return m

    def advance(self, t: int) -> None:
        if not self.plan:
            return
        nxt = self.plan[0]
        if nxt in ("T", "Q"):
            if t in (self.think_end, self.query_end):
                self.plan.pop(0)
                self.n = 0
            else:
                self.n += 1
            return
        self.plan.pop(0)
        if nxt == "A":
            self.plan = list(self.actions[t])
