"""Free-running greedy validation of a nano policy, the rule that picks the warm-up's policy.

A warm-up of the tiny policy lands in a different place for every float-rounding difference (another
CPU's kernels, another thread count): the same recipe measured a held-out greedy outcome of 1.65 on
one machine and 0.93 on another. So the warm-up trains several candidates (seeds) and keeps the one
this module scores best, a deterministic rule on data neither RL nor evaluation sees (the last
videos of the `sft` split, held out of the warm-up's training).

The score is what the evaluation measures, run in Python without the stack: each validation sample
is played as the rollout plays it (policy server encoding, the protocol grammar, greedy decoding,
the nano corpus answering searches, the high-res keyframe after a keyframe turn), and scored by the
box IoU of the answer against the target's box on the chosen keyframe (0 for no usable answer).
Search is a lexical stand-in for the local backend: the two passages sharing the most query words
(ties in corpus order), which is how the warm-up's traces pick their second passage too.
"""
from __future__ import annotations

import json
import os
import re

import numpy as np
from PIL import Image

from nano import policy_model as pm

STOPS = ["</search>", "</keyframe>", "</answer>"]
MAX_TURNS = 6
ANSWER_RE = re.compile(r'<answer> \{"bbox_2d": \[(\d+), (\d+), (\d+), (\d+)\], "point_2d": \[(\d+), (\d+)\]\} </answer>')


class LexicalSearch:
    """The top-2 corpus passages by shared query words (corpus order breaks ties)."""

    def __init__(self, corpus: list[str]) -> None:
        self.corpus = corpus
        self.words = [set(re.findall(r"[a-z]+", c.lower())) for c in corpus]

    def __call__(self, query: str) -> list[str]:
        q = set(re.findall(r"[a-z]+", query.lower()))
        ranked = sorted(range(len(self.corpus)), key=lambda i: (-len(q & self.words[i]), i))
        return [self.corpus[i] for i in ranked[:2] if q & self.words[i]]


def box_of(mask: np.ndarray) -> list[float] | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    h, w = mask.shape
    return [xs.min() / w * 1000, ys.min() / h * 1000, xs.max() / w * 1000, ys.max() / h * 1000]  # as the traces write boxes (policy_sft.norm_box)


def box_iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def play(model: pm.NanoPolicy, trace: dict, search: LexicalSearch, information, cache: dict,
         generate=pm.generate) -> dict:
    """One validation sample played greedily; {iou, status, turns}. `generate` is pm.generate (a
    test passes scripted turns)."""

    def img(p: str) -> Image.Image:
        if p not in cache:
            cache[p] = Image.open(p).convert("RGB")
        return cache[p]

    from nano.policy_sft import user_parts  # the trace's own message builder (no import cycle at load)

    fids = trace["frame_ids"]
    msgs = [{"role": "system", "content": trace["sys"]},
            {"role": "user", "content": user_parts(trace["user_text"], [img(p) for p in trace["frames"]])}]
    keyframe = None
    for turn in range(MAX_TURNS):
        p = pm.encode_conversation(model, msgs)
        room = model.config.max_len - p.positions()
        if room <= 0:
            return {"iou": 0.0, "status": "context", "turns": turn}
        out = generate(model, p, room, STOPS, temperature=0.0, seed=0, constrained=True, keyframes=fids)
        text = out["text"]
        msgs.append({"role": "assistant", "content": text})
        if out["stop_reason"] == "</search>":
            q = re.search(r'"query": "([^"]*)"', text)
            obs = information(search(q.group(1) if q else ""))
            msgs.append({"role": "user", "content": user_parts(obs, [])})
        elif out["stop_reason"] == "</keyframe>":
            k = int(re.search(r"(\d+) </keyframe>", text).group(1))
            keyframe = fids.index(k)
            obs = "Here is the high-res version of your selected frame: <image>"
            msgs.append({"role": "user", "content": user_parts(obs, [img(trace["frames"][keyframe])])})
        elif out["stop_reason"] == "</answer>" or (out["finish_reason"] == "stop" and "</answer>" in text):
            m = ANSWER_RE.search(text)
            if m is None or keyframe is None:
                return {"iou": 0.0, "status": "no_keyframe" if keyframe is None else "unparsed", "turns": turn + 1}
            x1, y1, x2, y2 = (float(v) for v in m.groups()[:4])
            if x2 <= x1 or y2 <= y1:
                return {"iou": 0.0, "status": "degenerate_box", "turns": turn + 1}
            target = box_of(np.asarray(Image.open(trace["masks"][keyframe])) > 127)
            iou = box_iou([x1, y1, x2, y2], target) if target else 0.0
            return {"iou": iou, "status": "ok", "turns": turn + 1}
        else:
            return {"iou": 0.0, "status": "length", "turns": turn + 1}
    return {"iou": 0.0, "status": "turns", "turns": MAX_TURNS}


def validate(model: pm.NanoPolicy, traces: list[dict], data: str) -> dict:
    """The mean greedy answer IoU over the traces, with the statuses counted."""
    import torch

    from nano.policy_sft import information

    corpus = [json.loads(line)["contents"] for line in open(os.path.join(data, "corpus.jsonl"))]
    search = LexicalSearch(corpus)
    cache: dict = {}
    model.eval()
    with torch.no_grad():
        runs = [play(model, t, search, information, cache) for t in traces]
    statuses: dict[str, int] = {}
    for r in runs:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    return {"score": float(np.mean([r["iou"] for r in runs])), "samples": len(runs), "statuses": statuses}
