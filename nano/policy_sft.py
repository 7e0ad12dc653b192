"""Supervised warm-up of the nano policy on generated protocol traces (deterministic by seed).

A trace is the conversation the rollout workflow would have with a perfect policy on a nano train
sample: the system prompt (search or not), `frame {fid}` + image for 6 linspace-sampled frames and
the question; then search turns (one-hop/relational: the artifact; multi-hop: the order's emblem,
then the artifact) answered by `<information>` blocks built from the corpus (the right passage and
the one a lexical search ranks next), the keyframe turn (the sampled frame where the target is
largest), the high-res keyframe, and the answer in 0–1000 coordinates. Traces come from the train
split and the `sft` split (nano/world.py `--sft`, videos RL and evaluation never see), encoded as
the policy server encodes a rollout. Loss: cross-entropy on assistant tokens, plus POINTER_WEIGHT ×
the pointer loss (at the six answer coordinates the policy's pointer, nano/policy_model.py, should
look at the target's keyframe cells; for a relational query at the anchor the search described,
the side being the model's offset), plus MEAN_WEIGHT × the L1 error of every number's mean.

Four candidates (seeds SEED, SEED+1000, ...) are trained, two at a time with one torch thread each,
and the one nano/policy_select.py scores best on held-out validation is kept (nano/README.md says
why: one warm-up is one draw from a wide distribution). A candidate is trained once for a given
code, data, steps, threads and torch kernels, and reused after that (`candidate_key`): `make demo`
keeps the best of the first two, and `make test` then trains only the other two of its four.

Usage: python -m nano.policy_sft --data .nano/data --out .nano/models/policy/v0 --seed 0 [--steps 2000]
       [--candidates 4 --jobs 2 --threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import time
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from nano import policy_model as pm
from nano.policy_select import validate

SEARCH_MARK = "<tools>"  # the search system prompt declares tools; the model only needs which one


def linspace(total: int, count: int) -> list[int]:
    return [int(v) for v in np.linspace(0, total - 1, count, dtype=int)]


def norm_box(b: list[int], w: int, h: int) -> list[int]:
    return [round(b[0] / w * 1000), round(b[1] / h * 1000), round(b[2] / w * 1000), round(b[3] / h * 1000)]


def inner_point(mask: np.ndarray) -> tuple[int, int]:
    """The deepest mask pixel (repeated 3×3 erosion), a stand-in for the EDT argmax."""
    m = mask.copy()
    last = m
    while m.any():
        last = m
        p = np.pad(m, 1)
        m = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    ys, xs = np.nonzero(last)
    cy, cx = ys.mean(), xs.mean()
    k = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
    return int(xs[k]), int(ys[k])


def second_hit(corpus: list[str], words_of: list[set[str]], query: str, right: str, rng: random.Random) -> str:
    """The passage a lexical search ranks after the right one: the most query words shared (so
    after "brilune appearance", the order whose emblem is the Brilune, as the local BM25 backend
    answers), a random one where none shares a word. The warm-up must see the observations the
    rollout will see: with random distractors the policy took the order passage that comes back
    second for its first search's answer and searched again."""
    words = set(re.findall(r"[a-z]+", query.lower()))
    scored = [(len(words & w), c) for c, w in zip(corpus, words_of) if c != right]
    best = max(n for n, _ in scored)
    return rng.choice([c for n, c in scored if n == best]) if best > 0 else rng.choice([c for _, c in scored])


def information(hits: list[str]) -> str:
    refs = ""
    for i, c in enumerate(hits):
        title, body = c.split("\n", 1)
        refs += f"{i + 1}. (Title: {title}) {body}\n"
    return f"<information>{refs}</information>\n\n"


def build_traces(data: str, split: str, rng: random.Random) -> list[dict]:
    meta = json.load(open(os.path.join(data, "meta.json")))
    corpus = [json.loads(line)["contents"] for line in open(os.path.join(data, "corpus.jsonl"))]
    by_title = {c.split("\n", 1)[0].lower(): c for c in corpus}
    words_of = [set(re.findall(r"[a-z]+", c.lower())) for c in corpus]
    traces = []
    for s in meta["splits"][split]:
        vdir = os.path.join(data, split, "JPEGImages", s["video"])
        adir = os.path.join(data, split, "Annotations", s["video"], s["oid"])
        names = sorted(n[:-4] for n in os.listdir(vdir))
        idx = linspace(len(names), 6)
        fids = [int(names[i]) for i in idx]
        masks = {i: np.asarray(Image.open(os.path.join(adir, names[i] + ".png"))) > 127 for i in idx}
        key = max(idx, key=lambda i: (int(masks[i].sum()), -i))
        h, w = masks[key].shape
        ys, xs = np.nonzero(masks[key])
        box = norm_box([int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())], w, h)
        px, py = inner_point(masks[key])
        point = [round(px / w * 1000), round(py / h * 1000)]
        # where the answer's pointer should look: the target, or for a relational query the
        # anchor (the artifact the search describes; the offset to its side is the model's)
        look = s["oid"]
        if s["ability"] == "relational":
            art = next(a for a in meta["world"]["artifacts"] if a["name"] == s["facts"]["artifact"])
            look = next(o["oid"] for o in s["objects"] if all(o[k] == art[k] for k in ("colour", "shape", "texture")))
        focus = os.path.join(data, split, "Annotations", s["video"], look, names[key] + ".png")
        sys = "search <tools>" if s["ability"] != "in-video" else "plain"
        user_text = "".join(f"frame {f} <image>\n" for f in fids) + f"\nPlease find '{s['query']}' in the provided video."
        turns: list[tuple[str, str]] = []  # (assistant text, observation text)
        facts = s["facts"]
        distract = lambda query, right: second_hit(corpus, words_of, query, right, rng)  # noqa: E731
        if s["ability"] == "multi-hop":
            o, a = facts["order"], facts["artifact"]
            turns.append((
                "<thinking> i will search for the emblem of the order . </thinking>\n"
                f'<search> {{"name": "text_search", "query": "{o.lower()} order emblem"}} </search>',
                information([by_title[f"{o.lower()} order"], distract(f"{o} order emblem", by_title[f"{o.lower()} order"])]),
            ))
        if s["ability"] in ("one-hop", "multi-hop", "relational"):
            a = facts["artifact"].lower()
            turns.append((
                "<thinking> i will search for its appearance . </thinking>\n"
                f'<search> {{"name": "text_search", "query": "{a} appearance"}} </search>',
                information([by_title[a], distract(f"{a} appearance", by_title[a])]),
            ))
        # short, constant thinking: the tiny model spends its capacity on the decisions (search
        # query, keyframe, coordinates), not on copying descriptions
        think = f"the target is on the {facts['side']} of it" if s["ability"] == "relational" else "this frame shows it best"
        turns.append((
            f"<thinking> {think} . </thinking>\n<keyframe> {fids[idx.index(key)]} </keyframe>",
            "Here is the high-res version of your selected frame: <image>",
        ))
        answer = (
            "<thinking> the target is here . </thinking>\n"
            f'<answer> {{"bbox_2d": [{box[0]}, {box[1]}, {box[2]}, {box[3]}], "point_2d": [{point[0]}, {point[1]}]}} </answer>'
        )
        traces.append({
            "sys": sys, "user_text": user_text, "frames": [os.path.join(vdir, names[i] + ".jpg") for i in idx],
            "keyframe": os.path.join(vdir, names[key] + ".jpg"), "turns": turns, "answer": answer,
            "focus": focus, "frame_ids": fids,
            "masks": [os.path.join(adir, names[i] + ".png") for i in idx],
        })
    return traces


def focus_cells(path: str) -> torch.Tensor:
    """A mask as a distribution over the keyframe's 8×8 patch grid (row-major), the pointer's target."""
    m = torch.from_numpy((np.asarray(Image.open(path)) > 127).astype(np.float32))
    cells = torch.nn.functional.adaptive_avg_pool2d(m[None, None], 8).flatten()
    return cells / cells.sum().clamp(min=1e-6)


def user_parts(text: str, images: list[Image.Image]) -> list[dict]:
    """`<image>` placeholders -> image parts, as the rollout sends them."""
    parts: list[dict] = []
    chunks = text.split("<image>")
    for i, c in enumerate(chunks):
        if c:
            parts.append({"type": "text", "text": c})
        if i < len(chunks) - 1:
            parts.append({"type": "image_url", "image_url": {"url": images[i]}})
    return parts


def trace_messages(tr: dict, img) -> list[dict]:
    """The trace as the chat messages the rollout sends the policy server (image parts in order)."""
    frames = [img(p) for p in tr["frames"]]
    msgs = [{"role": "system", "content": tr["sys"]}, {"role": "user", "content": user_parts(tr["user_text"], frames)}]
    for text, obs in list(tr["turns"]) + [(tr["answer"], None)]:
        msgs.append({"role": "assistant", "content": text})
        if obs is not None:
            msgs.append({"role": "user", "content": user_parts(obs, [img(tr["keyframe"])] if "<image>" in obs else [])})
    return msgs


def trace_example(model: pm.NanoPolicy, tr: dict, cache: dict) -> tuple[pm.Prompt, list[int]]:
    """The whole conversation as one sequence, encoded exactly as the policy server encodes the
    rollout's history (pm.encode_conversation: every past assistant turn is `<assistant>` content
    `<eos>`), and the indices of the trained tokens: each assistant turn's content, and the final
    answer's `<eos>` (where the policy must stop; an intermediate turn ends at its stop string)."""

    def img(p: str) -> Image.Image:
        # kept at the model's input size: every prefix of the conversation below is encoded again,
        # and resizing an IMG×IMG image to IMG×IMG is a copy (the same tensor, a fraction of the work)
        if p not in cache:
            cache[p] = Image.open(p).convert("RGB").resize((pm.IMG, pm.IMG), Image.BILINEAR)
        return cache[p]

    msgs = trace_messages(tr, img)
    resp: list[int] = []
    prev = len(pm.encode_conversation(model, msgs[:2], add_generation_prompt=False).ids)
    for i in range(2, len(msgs)):
        cur = len(pm.encode_conversation(model, msgs[: i + 1], add_generation_prompt=False).ids)
        if msgs[i]["role"] == "assistant":
            last = i == len(msgs) - 1
            resp += list(range(prev + 1, cur if last else cur - 1))  # after <assistant>; <eos> only at the end
        prev = cur
    return pm.encode_conversation(model, msgs, add_generation_prompt=False), resp


POINTER_WEIGHT = 3.0
MEAN_WEIGHT = 1.0


@dataclass
class AnswerTargets:
    """What the two extra losses compare against, fixed per trace (computed once, not per step)."""

    rows: torch.Tensor  # the positions that predict each number the trace writes (keyframe, box, point)
    values: torch.Tensor  # those numbers
    first: int  # the pointer's column of the high-res keyframe's first patch (64 per keyframe before it)
    focus: torch.Tensor  # where the pointer should look: focus_cells of the target (or anchor)


def answer_targets(model: pm.NanoPolicy, example: tuple[pm.Prompt, list[int]], focus: torch.Tensor) -> AnswerTargets:
    p, resp = example
    pos = p.offsets()
    nums = [i for i in resp if model.tok.is_number(p.ids[i])]
    return AnswerTargets(
        rows=torch.tensor([pos[i] - 1 for i in nums]),
        values=torch.tensor([float(p.ids[i] - model.tok.num0) for i in nums]),
        first=64 * (sum(fine for _, fine in p.images) - 1),
        focus=focus,
    )


def pointer_loss(att: torch.Tensor, targets: list[AnswerTargets]) -> torch.Tensor:
    """Cross-entropy between where the pointer looks (its attention over the keyframe's patches) at
    the positions that predict the answer's six coordinates and where the target (or, relational,
    the anchor) is."""
    losses = []
    for b, tg in enumerate(targets):
        a = att[b, tg.rows[-6:], tg.first : tg.first + 64]  # bbox_2d, point_2d
        losses.append(-(tg.focus.unsqueeze(0) * torch.log(a + 1e-9)).sum(-1).mean())
    return torch.stack(losses).mean()


def mean_loss(model: pm.NanoPolicy, h: torch.Tensor, centre: torch.Tensor, targets: list[AnswerTargets]) -> torch.Tensor:
    """Mean absolute error (in hundreds of 0–1000 units) of the number distribution's mean on every
    number the traces write. The cross-entropy alone moves a mean by (target − mean)/σ², which is
    slow while σ is still wide; this pulls the means in directly, and the cross-entropy then
    narrows σ."""
    errs = [(model.number_mean(h[b, tg.rows], centre[b, tg.rows]) - tg.values).abs() / 100.0 for b, tg in enumerate(targets)]
    return torch.cat(errs).mean()


def vocabulary_words(data: str) -> list[str]:
    meta = json.load(open(os.path.join(data, "meta.json")))
    text = " ".join(json.loads(line)["contents"] for line in open(os.path.join(data, "corpus.jsonl")))
    text += " " + " ".join(s["query"] for sp in meta["splits"].values() for s in sp)
    text += (" the query names order i will search for its emblem which video cannot show it target is on left right"
             " of frame shows best here appearance please find in provided version your selected a an")
    return re.findall(r"[a-z]+", text.lower())


VAL_VIDEOS = 96  # the last videos of the `sft` split: the candidates' validation, never trained on


def split_traces(data: str, rng: random.Random) -> tuple[list[dict], list[dict]]:
    """(training traces: train split + sft split less its last VAL_VIDEOS, validation traces: those)."""
    meta = json.load(open(os.path.join(data, "meta.json")))
    train = build_traces(data, "train", rng)
    sft = build_traces(data, "sft", rng) if "sft" in meta["splits"] else []
    if len(sft) <= VAL_VIDEOS:
        raise SystemExit(f"--data {data}: the sft split has {len(sft)} videos; the warm-up holds out its last "
                         f"{VAL_VIDEOS} for validation, so it needs more (nano.world --sft, default 960)")
    return train + sft[:-VAL_VIDEOS], sft[-VAL_VIDEOS:]


def train(data: str, out: str, seed: int, steps: int, batch: int = 8, log=print) -> dict:
    rng = random.Random(seed)
    tok = pm.Tokenizer.build(vocabulary_words(data))
    model = pm.new_model(tok, seed)
    traces, val = split_traces(data, rng)
    cache: dict = {}
    examples = [trace_example(model, t, cache) for t in traces]
    targets = [answer_targets(model, ex, focus_cells(t["focus"])) for ex, t in zip(examples, traces)]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    t0 = time.time()
    model.train()
    for step in range(steps):
        pick = [rng.randrange(len(examples)) for _ in range(batch)]
        items = [examples[i] for i in pick]
        h, centre, att = model.forward_pointer([p for p, _ in items])
        lp, _ = pm.response_stats(model, h, centre, items)
        n = torch.tensor([len(r) for _, r in items])
        mask = torch.arange(lp.shape[1]).unsqueeze(0) < n.unsqueeze(1)
        tgs = [targets[i] for i in pick]
        loss = (-(lp * mask).sum() / mask.sum() + POINTER_WEIGHT * pointer_loss(att, tgs)
                + MEAN_WEIGHT * mean_loss(model, h, centre, tgs))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 20 == 0 or step == steps - 1:
            log(f"policy sft step {step}/{steps} loss {loss.item():.3f} ({time.time() - t0:.0f}s)")
    model.eval()
    pm.save(model, out)
    seconds = time.time() - t0
    v = validate(model, val, data)
    log(f"policy sft seed {seed}: validation score {v['score']:.4f} on {v['samples']} held-out sft videos {v['statuses']}")
    return {"seconds": seconds, "loss": float(loss), "validation": v}


def candidate_seeds(seed: int, candidates: int) -> list[int]:
    return [seed + 1000 * k for k in range(candidates)]


def pick(results: dict[int, dict]) -> int:
    """The rule that keeps one candidate: the highest validation score; equal scores, the lower seed."""
    return min(results, key=lambda s: (-results[s]["validation"]["score"], s))


CANDIDATE_INPUTS = ("policy_model.py", "policy_sft.py", "policy_select.py")


KERNEL_SETTINGS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR")


def candidate_key(data: str, steps: int, threads: int) -> str | None:
    """What a trained candidate is a function of, besides its seed: this code, the data (its
    nano-setup stamp), the steps, the torch threads (another thread count sums in another order), and
    torch's version and kernels (the CPU capability it dispatches to, and the settings that cap it).
    None when the data has no stamp (generated by hand): then nothing is reused."""
    import hashlib

    stamp = os.path.join(data, ".stamp")
    if not os.path.isfile(stamp):
        return None
    h = hashlib.sha256()
    for name in CANDIDATE_INPUTS:
        h.update(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), name), "rb").read())
    h.update(open(stamp, "rb").read())
    h.update(f"steps{steps}-threads{threads}-torch{torch.__version__}-{torch.backends.cpu.get_cpu_capability()}".encode())
    h.update(json.dumps({k: os.environ.get(k) for k in KERNEL_SETTINGS}).encode())
    return h.hexdigest()


def reusable(root: str, seed: int, key: str | None) -> bool:
    """A candidate trained before with the same key: its warm-up is the one training would make again
    (deterministic by seed), so `make demo`'s two candidates are two of `make test`'s four."""
    d = f"{root}/seed{seed}"
    return (key is not None and os.path.isfile(f"{d}/warmup.json") and os.path.isfile(f"{d}/.key")
            and open(f"{d}/.key").read() == key)


def run_candidate(cmd: list[str], log_path: str) -> int:
    import subprocess

    with open(log_path, "w") as log:
        return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode


def train_candidates(a: argparse.Namespace) -> dict:
    """Trains the candidates as child processes (`a.jobs` at a time, `a.threads` torch threads each),
    then copies the one `pick` keeps into a.out; every candidate, its log and the choice stay in
    `{a.out}.candidates/` (selection.json says why). A candidate already there with the same
    `candidate_key` is reused, not trained again."""
    import shutil
    import sys
    from concurrent.futures import ThreadPoolExecutor

    root = a.out.rstrip("/") + ".candidates"
    os.makedirs(root, exist_ok=True)
    seeds = candidate_seeds(a.seed, a.candidates)
    key = candidate_key(a.data, a.steps, a.threads)
    t0 = time.time()

    def say(line: str) -> None:  # one write per line: the candidates' threads print side by side
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def one(s: int) -> int:
        if reusable(root, s, key):
            say(f"policy sft: candidate seed {s} reused ({root}/seed{s}: "
                "the same code, data, steps, threads and torch kernels)")
            return 0
        shutil.rmtree(f"{root}/seed{s}", ignore_errors=True)
        cmd = [sys.executable, "-W", "ignore", "-m", "nano.policy_sft", "--data", a.data, "--out", f"{root}/seed{s}",
               "--seed", str(s), "--steps", str(a.steps), "--threads", str(a.threads), "--candidates", "1"]
        code = run_candidate(cmd, f"{root}/seed{s}.log")
        if code == 0 and key is not None:
            open(f"{root}/seed{s}/.key", "w").write(key)
        say(f"policy sft: candidate seed {s} {'done' if code == 0 else f'FAILED (exit {code})'} ({time.time() - t0:.0f}s)")
        return code

    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        codes = dict(zip(seeds, pool.map(one, seeds)))
    for s, code in codes.items():
        if code != 0:
            tail = open(f"{root}/seed{s}.log").read()[-2000:]
            raise SystemExit(f"policy sft: candidate seed {s} failed (exit {code}); its log {root}/seed{s}.log ends:\n{tail}")
    results = {s: json.load(open(f"{root}/seed{s}/warmup.json")) for s in seeds}
    best = pick(results)
    shutil.rmtree(a.out, ignore_errors=True)
    shutil.copytree(f"{root}/seed{best}", a.out, ignore=shutil.ignore_patterns(".key"))
    selection = {"rule": "highest validation score (mean greedy answer box IoU on the sft split's last "
                         f"{VAL_VIDEOS} videos, nano/policy_select.py); equal scores: the lower seed",
                 "kept": best, "candidates": {str(s): results[s] for s in seeds}}
    json.dump(selection, open(f"{root}/selection.json", "w"), indent=1)
    return {"seconds": time.time() - t0, "kept": best,
            "scores": {str(s): round(results[s]["validation"]["score"], 4) for s in seeds}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--candidates", type=int, default=4,
                    help="warm-ups to train (seeds SEED, SEED+1000, ...); the best on validation is kept")
    ap.add_argument("--jobs", type=int, default=2, help="candidates trained at once")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per candidate")
    a = ap.parse_args()
    if a.steps < 20:
        raise SystemExit(f"--steps {a.steps}: at least 20 (the one-cycle schedule warms up over the first 10 % of the steps)")
    if a.candidates < 1 or a.jobs < 1 or a.threads < 1:
        raise SystemExit(f"--candidates {a.candidates} / --jobs {a.jobs} / --threads {a.threads}: each at least 1")
    if not os.path.isfile(os.path.join(a.data, "meta.json")):
        raise SystemExit(f"--data {a.data}: no meta.json there; run python -m nano.world --out {a.data} first")
    if a.candidates > 1:
        print(json.dumps({"out": a.out, **train_candidates(a)}))
        return
    torch.set_num_threads(a.threads)
    r = train(a.data, a.out, a.seed, a.steps)
    json.dump({"seed": a.seed, "steps": a.steps, "threads": a.threads, "train_seconds": round(r["seconds"], 1),
               "final_loss": round(r["loss"], 4), "validation": r["validation"]}, open(os.path.join(a.out, "warmup.json"), "w"), indent=1)
    print(json.dumps({"out": a.out, "train_seconds": round(r["seconds"], 1), "final_loss": round(r["loss"], 3),
                      "validation": round(r["validation"]["score"], 4)}))


if __name__ == "__main__":
    main()
