"""Golden ground truth (box, point, areas) written from the definitions in Seg-ReSearch's
preprocessing (spec §2): tight box from np.where, point = argmax of
scipy.ndimage.distance_transform_edt with the nearest-mask-pixel fallback, area = pixel count,
max_conn_area = largest component of cv2.connectedComponentsWithStats(connectivity=8), both
normalised by their maximum over the sampled frames, coordinates round(x / W * 1000).

Output: test/fixtures/golden/groundtruth.json. Run from the repository root:
    python test/golden/groundtruth_reference.py [--shared ../shared/data]
"""
import argparse
import json
import os
import sys

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage

sys.path.insert(0, os.path.dirname(__file__))
from masks_spec import blob_spec, random_spec, render  # noqa: E402


def bounding_box(m):
    ys, xs = np.where(m > 0)
    return [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]


def innermost_point(m):
    ys, xs = np.where(m > 0)
    dt = ndimage.distance_transform_edt(m)
    y, x = np.unravel_index(dt.argmax(), dt.shape)
    if m[y, x] == 0:
        k = np.argmin((xs - x) ** 2 + (ys - y) ** 2)
        x, y = xs[k], ys[k]
    return [int(x), int(y)]


def max_component(m):
    _, _, stats, _ = cv2.connectedComponentsWithStats((m * 255).astype(np.uint8), connectivity=8)
    return float(np.max(stats[1:, cv2.CC_STAT_AREA]))


def geometry(m):
    return {"bbox": bounding_box(m), "point": innermost_point(m), "area": float(m.sum()), "maxConnArea": max_component(m)}


def sample_gt(frames):
    """frames: list of (frame_id, mask or None). Returns the reference's dict before json.dumps."""
    answers = {}
    h = w = 0
    for fid, m in frames:
        if m is None:
            continue
        h, w = m.shape
        if m.any():
            g = geometry(m)
            answers[fid] = {"bbox_2d": g["bbox"], "point_2d": g["point"], "area": g["area"], "max_conn_area": g["maxConnArea"]}
    if answers:
        max_area = max(answers.values(), key=lambda x: x.get("area", 0))["area"]
        max_conn = max(answers.values(), key=lambda x: x.get("max_conn_area", 0))["max_conn_area"]
        for v in answers.values():
            x1, y1, x2, y2 = v["bbox_2d"]
            v["bbox_2d"] = [round(x1 / w * 1000), round(y1 / h * 1000), round(x2 / w * 1000), round(y2 / h * 1000)]
            x, y = v["point_2d"]
            v["point_2d"] = [round(x / w * 1000), round(y / h * 1000)]
            v["area"] = v["area"] / max_area
            v["max_conn_area"] = v["max_conn_area"] / max_conn
    return {str(k): v for k, v in answers.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "fixtures", "golden", "groundtruth.json"))
    args = ap.parse_args()
    davis = os.path.join(args.shared, "davis_osvos")
    rng = np.random.default_rng(7)

    specs = [
        ("full 5x4", {"width": 5, "height": 4, "full": True}),
        ("full 1x1", {"width": 1, "height": 1, "full": True}),
        ("single pixel", {"width": 9, "height": 7, "pixels": [[4, 2]]}),
        ("corner pixel", {"width": 9, "height": 7, "pixels": [[0, 0]]}),
        ("touching left border", {"width": 20, "height": 10, "rects": [[0, 2, 6, 7]]}),
        ("touching all borders but one pixel", {"width": 12, "height": 9, "full": True, "rects": []}),
        ("square with tie", {"width": 10, "height": 10, "rects": [[2, 2, 5, 5]]}),
        ("two diagonal blobs (one 8-component)", {"width": 10, "height": 10, "rects": [[0, 0, 2, 2], [3, 3, 6, 6]]}),
        ("two separate blobs", {"width": 16, "height": 10, "rects": [[0, 0, 2, 2], [6, 4, 12, 8]]}),
        ("thin line", {"width": 30, "height": 5, "rects": [[3, 2, 25, 2]]}),
    ]
    # Punch a background pixel into the "touching all borders" mask (scipy then measures to it).
    specs[5] = ("all but one pixel", {"width": 12, "height": 9, "bits": "".join("0" if (x, y) == (7, 3) else "1" for y in range(9) for x in range(12))})
    for i in range(10):
        w = int(rng.integers(3, 50))
        h = int(rng.integers(3, 40))
        specs.append((f"random {w}x{h} #{i}", random_spec(rng, w, h, 0.55 + 0.04 * i)))
    for i in range(5):
        specs.append((f"blobs 120x90 #{i}", blob_spec(rng, 120, 90, 1 + i)))

    masks = []
    for name, spec in specs:
        m = render(spec)
        masks.append({"name": name, "mask": spec, "geometry": geometry(m) if m.any() else None})

    # Real masks: DAVIS palette PNGs binarised on non-zero label.
    real = []
    for seq in ["blackswan", "dog", "judo"]:
        names = sorted(n for n in os.listdir(os.path.join(davis, seq)) if n.endswith(".png"))
        for n in names[::7]:
            m = (np.array(Image.open(os.path.join(davis, seq, n))) != 0).astype(np.uint8)
            real.append({"file": f"{seq}/{n}", "geometry": geometry(m)})

    # Samples: frames picked like the test split (integer linspace of 6), one with a missing mask file.
    samples = []
    for seq in ["blackswan", "dog", "judo"]:
        names = sorted(n for n in os.listdir(os.path.join(davis, seq)) if n.endswith(".png"))
        idx = np.linspace(0, len(names) - 1, 6, dtype=int).tolist()
        frames = []
        for j, i in enumerate(idx):
            path = os.path.join(davis, seq, names[i])
            fid = int(names[i].split(".")[0])
            m = None if (seq == "dog" and j == 2) else (np.array(Image.open(path)) != 0).astype(np.uint8)
            frames.append((fid, m))
        samples.append({"sequence": seq, "frames": [{"frameId": f, "file": None if m is None else f"{seq}/{f:05d}.png"} for f, m in frames], "groundTruth": sample_gt(frames)})
    # A synthetic sample with an empty frame and different areas.
    syn_specs = [{"width": 40, "height": 30, "rects": [[5, 5, 20, 20]]}, {"width": 40, "height": 30}, {"width": 40, "height": 30, "rects": [[0, 0, 3, 3], [10, 10, 30, 25]]}]
    samples.append({"sequence": "synthetic", "frames": [{"frameId": 3 * k, "mask": s} for k, s in enumerate(syn_specs)], "groundTruth": sample_gt([(3 * k, render(s)) for k, s in enumerate(syn_specs)])})

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump({"generator": "test/golden/groundtruth_reference.py", "masks": masks, "real": real, "samples": samples}, fh)
    print(f"wrote {args.out}: {len(masks)} synthetic masks, {len(real)} real masks, {len(samples)} samples")


if __name__ == "__main__":
    main()
