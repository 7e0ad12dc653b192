"""The nano world: a deterministic (by seed) synthetic knowledge-seeking video segmentation set.

Videos show three textured shapes, each moving up and down in its own vertical lane (so "left of"
holds in every frame). A small knowledge corpus of invented entities links names to looks:
artifacts (``the Zorblax is a striped teal star``), orders whose emblem is an artifact, so that
a query naming an artifact or an order can only be resolved by searching. Four abilities, as in
OK-VOS: ``in-video`` (the query describes the look), ``one-hop`` (an artifact's name), ``multi-hop``
(an order's emblem: order -> artifact -> look) and ``relational`` (the object left/right of an
artifact).

Output (OK-VOS layout, read unchanged by activities/datasets/okvos.ts):
  {out}/{split}.parquet                       question, images, ability, video, oid, id, steps
  {out}/{split}/JPEGImages/<video>/<name>.jpg
  {out}/{split}/Annotations/<video>/<oid>/<name>.png   (0/255)
  {out}/corpus.jsonl                          Search-R1 {id, contents: "Title\\nBody"}
  {out}/meta.json                             the world (entities) and per-sample objects

Usage: python -m nano.world --out .nano/data --seed 0 [--train 240 --test 48]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

SIZE = 160
FRAMES = 10
OBJECTS = 3
LANES = (27, 80, 133)

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (214, 48, 49),
    "green": (46, 160, 67),
    "blue": (45, 85, 220),
    "yellow": (232, 196, 30),
    "purple": (136, 66, 186),
    "orange": (240, 128, 28),
    "teal": (18, 156, 160),
    "pink": (232, 104, 172),
}
SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross")
TEXTURES = ("plain", "striped", "dotted")
ABILITIES = ("in-video", "one-hop", "multi-hop", "relational")

SYLLABLES_A = ("zor", "quil", "vex", "mar", "tal", "bri", "dun", "kel", "orm", "pra", "sil", "thu", "yan", "gro")
SYLLABLES_B = ("blax", "mora", "deen", "vith", "quor", "lune", "drak", "fen", "gast", "rhel", "pix", "tarn")
CRAFTS = ("weavers", "glassmakers", "cartographers", "bellfounders", "scribes", "tinkers", "dyers", "masons")
PLACES = ("northern", "river", "mountain", "harbour", "desert", "island")


@dataclass(frozen=True)
class Look:
    colour: str
    shape: str
    texture: str

    def phrase(self) -> str:
        return f"{self.texture} {self.colour} {self.shape}"


@dataclass
class Artifact:
    name: str
    look: Look
    place: str


@dataclass
class Order:
    name: str
    craft: str
    emblem: str  # artifact name


@dataclass
class World:
    seed: int
    artifacts: list[Artifact] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)

    def artifact(self, name: str) -> Artifact:
        return next(a for a in self.artifacts if a.name == name)

    def artifact_with_look(self, look: Look) -> Artifact | None:
        return next((a for a in self.artifacts if a.look == look), None)


def make_world(seed: int, n_artifacts: int = 24, n_orders: int = 10) -> World:
    rng = random.Random(f"nano-world-{seed}")
    names: list[str] = []
    while len(names) < n_artifacts + n_orders:
        n = (rng.choice(SYLLABLES_A) + rng.choice(SYLLABLES_B)).capitalize()
        if n not in names:
            names.append(n)
    looks = [Look(c, s, t) for c in COLOURS for s in SHAPES for t in TEXTURES]
    rng.shuffle(looks)
    world = World(seed)
    for i in range(n_artifacts):
        world.artifacts.append(Artifact(names[i], looks[i], rng.choice(PLACES)))
    emblems = rng.sample([a.name for a in world.artifacts], n_orders)
    for j in range(n_orders):
        world.orders.append(Order(names[n_artifacts + j], rng.choice(CRAFTS), emblems[j]))
    return world


def corpus(world: World) -> list[dict[str, str]]:
    docs = []
    for a in world.artifacts:
        body = (
            f"The {a.name} is a {a.look.phrase()}. "
            f"It is an old relic kept in the {a.place} archives."
        )
        docs.append({"title": a.name, "body": body})
    for o in world.orders:
        body = f"The {o.name} order is an old fellowship of {o.craft}. Its emblem is the {o.emblem}."
        docs.append({"title": f"{o.name} order", "body": body})
    return [
        {"id": str(i), "contents": f"{d['title']}\n{d['body']}"} for i, d in enumerate(docs)
    ]


# ---------------------------------------------------------------- rendering

def _shape_polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    if shape == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + r, cy + r * 0.85), (cx - r, cy + r * 0.85)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
    if shape == "star":
        pts = []
        for k in range(10):
            ang = -np.pi / 2 + k * np.pi / 5
            rr = r if k % 2 == 0 else r * 0.45
            pts.append((cx + rr * np.cos(ang), cy + rr * np.sin(ang)))
        return pts
    if shape == "cross":
        w = r * 0.38
        return [
            (cx - w, cy - r), (cx + w, cy - r), (cx + w, cy - w), (cx + r, cy - w), (cx + r, cy + w),
            (cx + w, cy + w), (cx + w, cy + r), (cx - w, cy + r), (cx - w, cy + w), (cx - r, cy + w),
            (cx - r, cy - w), (cx - w, cy - w),
        ]
    return None  # circle


def shape_mask(shape: str, cx: float, cy: float, r: float) -> np.ndarray:
    img = Image.new("L", (SIZE, SIZE), 0)
    d = ImageDraw.Draw(img)
    poly = _shape_polygon(shape, cx, cy, r)
    if poly is None:
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        d.polygon(poly, fill=255)
    return np.asarray(img) > 0


def _texture(look: Look, phase: int) -> np.ndarray:
    base = np.array(COLOURS[look.colour], dtype=np.float32)
    tex = np.broadcast_to(base, (SIZE, SIZE, 3)).copy()
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    if look.texture == "striped":
        stripe = ((xx + yy + phase) // 4) % 2 == 0
        tex[stripe] = base * 0.45
    elif look.texture == "dotted":
        dot = ((xx % 7) - 3) ** 2 + ((yy % 7) - 3) ** 2 <= 2
        tex[dot] = 250.0
    return tex


def _background(rng: np.random.Generator) -> np.ndarray:
    tone = rng.uniform(200, 240, size=3)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    grad = (xx * rng.uniform(-18, 18) + yy * rng.uniform(-18, 18))[..., None]
    noise = rng.normal(0, 4, size=(SIZE, SIZE, 3))
    return np.clip(tone[None, None, :] + grad + noise, 0, 255).astype(np.float32)


@dataclass
class VideoObject:
    oid: str
    look: Look
    lane: int
    radius: float
    boxes: list[list[int]]  # per frame, x1 y1 x2 y2 (pixels, inclusive) of the visible mask


def render_video(rng: np.random.Generator, looks: list[Look]) -> tuple[list[np.ndarray], list[list[np.ndarray]], list[VideoObject]]:
    """Frames (H,W,3 uint8) and per-object masks per frame; objects in lanes left to right."""
    bg = _background(rng)
    lanes = list(range(OBJECTS))
    rng.shuffle(lanes)
    params = []
    for i, look in enumerate(looks):
        r = float(rng.uniform(14, 22))
        y0 = float(rng.uniform(r + 4, SIZE - r - 4))
        vy = float(rng.choice([-1, 1]) * rng.uniform(3.0, 7.0))
        dx = float(rng.uniform(-4, 4))
        params.append((look, lanes[i], r, y0, vy, dx))
    frames, masks = [], [[] for _ in looks]
    objects = [VideoObject(str(i + 1), p[0], p[1], p[2], []) for i, p in enumerate(params)]
    for t in range(FRAMES):
        img = bg.copy()
        taken = np.zeros((SIZE, SIZE), dtype=bool)
        for i, (look, lane, r, y0, vy, dx) in enumerate(params):
            # bounce between the top and bottom margins
            lo, hi = r + 3, SIZE - r - 3
            span = hi - lo
            pos = (y0 - lo + vy * t) % (2 * span)
            cy = lo + (pos if pos <= span else 2 * span - pos)
            cx = LANES[lane] + dx * np.sin(t / 3.0)
            m = shape_mask(look.shape, cx, cy, r) & ~taken
            taken |= m
            img[m] = _texture(look, t)[m]
            masks[i].append(m)
            ys, xs = np.nonzero(m)
            objects[i].boxes.append(
                [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())] if len(xs) else [0, 0, 0, 0]
            )
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames, masks, objects


# ---------------------------------------------------------------- samples

def frame_name(t: int) -> str:
    return f"{t:05d}"


def question_of(query: str) -> str:
    return f"Please find '{query}' in the provided video."


def make_sample(world: World, rng: random.Random, ability: str) -> tuple[list[Look], int, str, list[str], dict]:
    """Looks of the 3 objects, the target's index, the query, the reference search steps, facts."""
    artifact_looks = {a.look for a in world.artifacts}
    all_looks = [Look(c, s, t) for c in COLOURS for s in SHAPES for t in TEXTURES]

    def distractors(target: Look, n: int) -> list[Look]:
        # distinct colour+shape from the target and each other; some are other artifacts' looks
        out: list[Look] = []
        pool = list(all_looks)
        rng.shuffle(pool)
        for lk in pool:
            if (lk.colour, lk.shape) == (target.colour, target.shape):
                continue
            if any((lk.colour, lk.shape) == (o.colour, o.shape) for o in out):
                continue
            out.append(lk)
            if len(out) == n:
                break
        return out

    facts: dict = {}
    if ability == "in-video":
        target = rng.choice(all_looks)
        looks = [target, *distractors(target, OBJECTS - 1)]
        query = f"the {target.phrase()}"
        steps: list[str] = []
    elif ability == "one-hop":
        art = rng.choice(world.artifacts)
        target = art.look
        looks = [target, *distractors(target, OBJECTS - 1)]
        query = f"the {art.name}"
        steps = [f"{art.name} appearance"]
        facts = {"artifact": art.name}
    elif ability == "multi-hop":
        order = rng.choice(world.orders)
        art = world.artifact(order.emblem)
        target = art.look
        looks = [target, *distractors(target, OBJECTS - 1)]
        query = f"the emblem of the {order.name} order"
        steps = [f"{order.name} order emblem", f"{art.name} appearance"]
        facts = {"order": order.name, "artifact": art.name}
    else:  # relational: the object left or right of a named artifact
        art = rng.choice(world.artifacts)
        side = rng.choice(["left", "right"])
        other = distractors(art.look, OBJECTS - 1)
        looks = [art.look, *other]
        query = f"the object to the {side} of the {art.name}"
        steps = [f"{art.name} appearance"]
        facts = {"artifact": art.name, "side": side}
        # the target is decided after lanes are known (see generate)
        return looks, -1, query, steps, facts
    del artifact_looks
    return looks, 0, query, steps, facts


def generate(out: str, seed: int, n_train: int, n_test: int, n_sft: int = 0) -> dict:
    """Writes the train and test splits and, with `n_sft`, an `sft` split (same layout) that only
    the policy's supervised warm-up reads: RL and evaluation keep the small train/test splits, the
    warm-up sees enough videos not to memorise them. Each split has its own random streams, so
    `n_sft` and `n_train` never change another split."""
    world = make_world(seed)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "corpus.jsonl"), "w") as f:
        for doc in corpus(world):
            f.write(json.dumps(doc) + "\n")
    meta: dict = {"seed": seed, "size": SIZE, "frames": FRAMES, "world": {
        "artifacts": [{"name": a.name, **asdict(a.look), "place": a.place} for a in world.artifacts],
        "orders": [asdict(o) for o in world.orders],
    }, "splits": {}}
    for split, n in (("train", n_train), ("test", n_test), ("sft", n_sft)):
        if split == "sft" and n == 0:
            continue
        rng = random.Random(f"nano-{split}-{seed}")
        nrng = np.random.default_rng(int.from_bytes(hashlib.sha256(f"nano-{split}-{seed}".encode()).digest()[:8], "little"))
        rows = {k: [] for k in ("question", "images", "ability", "video", "oid", "id", "steps")}
        samples = []
        for i in range(n):
            ability = ABILITIES[i % len(ABILITIES)]
            while True:
                looks, target_idx, query, steps, facts = make_sample(world, rng, ability)
                frames, masks, objects = render_video(nrng, looks)
                if target_idx < 0:
                    lane = objects[0].lane + (-1 if facts["side"] == "left" else 1)
                    if not 0 <= lane < OBJECTS:
                        continue  # no object on that side: draw again
                    target_idx = next(j for j, o in enumerate(objects) if o.lane == lane)
                if all(masks[target_idx][t].any() for t in range(FRAMES)):
                    break
            video = f"{split}_{i:04d}"
            vdir = os.path.join(out, split, "JPEGImages", video)
            os.makedirs(vdir, exist_ok=True)
            for t, fr in enumerate(frames):
                Image.fromarray(fr).save(os.path.join(vdir, frame_name(t) + ".jpg"), quality=92)
            for j, obj in enumerate(objects):
                adir = os.path.join(out, split, "Annotations", video, obj.oid)
                os.makedirs(adir, exist_ok=True)
                for t in range(FRAMES):
                    Image.fromarray(masks[j][t].astype(np.uint8) * 255).save(os.path.join(adir, frame_name(t) + ".png"))
            target = objects[target_idx]
            rows["question"].append(question_of(query))
            rows["images"].append([frame_name(t) for t in range(FRAMES)])
            rows["ability"].append(ability)
            rows["video"].append(video)
            rows["oid"].append(target.oid)
            rows["id"].append(video)
            rows["steps"].append(steps)
            samples.append({
                "id": video, "video": video, "ability": ability, "query": query, "oid": target.oid,
                "target": target.look.phrase(), "facts": facts, "steps": steps,
                "objects": [{"oid": o.oid, **asdict(o.look), "lane": o.lane, "boxes": o.boxes} for o in objects],
            })
        table = pa.table({
            "question": pa.array(rows["question"], pa.string()),
            "images": pa.array(rows["images"], pa.list_(pa.string())),
            "ability": pa.array(rows["ability"], pa.string()),
            "video": pa.array(rows["video"], pa.string()),
            "oid": pa.array(rows["oid"], pa.string()),
            "id": pa.array(rows["id"], pa.string()),
            "steps": pa.array(rows["steps"], pa.list_(pa.string())),
        })
        pq.write_table(table, os.path.join(out, f"{split}.parquet"), compression="snappy")
        meta["splits"][split] = samples
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", type=int, default=240)
    ap.add_argument("--test", type=int, default=48)
    ap.add_argument("--sft", type=int, default=960, help="videos of the policy warm-up's own split (0: none)")
    a = ap.parse_args()
    if a.train < 1 or a.test < 1 or a.sft < 0:
        raise SystemExit(f"--train {a.train} / --test {a.test} / --sft {a.sft}: train and test must be at least 1, sft at least 0")
    meta = generate(a.out, a.seed, a.train, a.test, a.sft)
    print(json.dumps({"out": a.out, **{k: len(v) for k, v in meta["splits"].items()}}))


if __name__ == "__main__":
    main()
