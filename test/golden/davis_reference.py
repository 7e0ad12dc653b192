"""Golden values for segflow's DAVIS J/F, written from the definitions in davis2017-evaluation
(`davis2017/metrics.py`: db_eval_iou, f_measure, _seg2bmap; `davis2017/utils.py`: db_statistics)
with the same libraries the reference uses (numpy, cv2.dilate, skimage.morphology.disk).

Output: test/fixtures/golden/davis.json. Run from the repository root:
    python test/golden/davis_reference.py [--shared ../shared/data]
"""
import argparse
import json
import math
import os
import sys

import cv2
import numpy as np
from PIL import Image
from skimage.morphology import disk

sys.path.insert(0, os.path.dirname(__file__))
from masks_spec import blob_spec, random_spec, render  # noqa: E402


def jaccard(gt, pred):
    gt = gt.astype(bool)
    pred = pred.astype(bool)
    inter = np.sum(gt & pred)
    union = np.sum(gt | pred)
    return 1.0 if np.isclose(union, 0) else float(inter / union)


def seg2bmap(seg):
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def f_measure(fg, gt, bound_th=0.008):
    bound_pix = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(fg.shape))
    fg_b = seg2bmap(fg)
    gt_b = seg2bmap(gt)
    kernel = disk(bound_pix).astype(np.uint8)
    fg_dil = cv2.dilate(fg_b.astype(np.uint8), kernel)
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), kernel)
    gt_match = gt_b * fg_dil
    fg_match = fg_b * gt_dil
    n_fg = np.sum(fg_b)
    n_gt = np.sum(gt_b)
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision = np.sum(fg_match) / float(n_fg)
        recall = np.sum(gt_match) / float(n_gt)
    if precision + recall == 0:
        return 0.0, float(precision), float(recall)
    return float(2 * precision * recall / (precision + recall)), float(precision), float(recall)


def db_statistics(values):
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            M = np.nanmean(values)
            O = np.nanmean(values > 0.5)
            ids = np.round(np.linspace(1, len(values), 5) + 1e-10) - 1
            ids = ids.astype(np.uint8)
            bins = [values[ids[i] : ids[i + 1] + 1] for i in range(4)]
            D = np.nanmean(bins[0]) - np.nanmean(bins[3])
    return [float(M), float(O), float(D)]


def read_nonzero(path):
    # Palette PNGs: the label index; any non-zero label is foreground.
    return (np.array(Image.open(path)) != 0).astype(np.uint8)


def num(x):
    if isinstance(x, float) and math.isnan(x):
        return "NaN"
    return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "fixtures", "golden", "davis.json"))
    args = ap.parse_args()
    davis = os.path.join(args.shared, "davis_osvos")
    rng = np.random.default_rng(20260214)

    # Synthetic frames: edge cases first, then random masks of odd sizes.
    W, H = 854, 480
    synthetic = [
        ("both empty", {"width": W, "height": H}, {"width": W, "height": H}),
        ("empty prediction", {"width": W, "height": H}, {"width": W, "height": H, "rects": [[100, 50, 300, 200]]}),
        ("empty ground truth", {"width": W, "height": H, "rects": [[100, 50, 300, 200]]}, {"width": W, "height": H}),
        ("one pixel, top-left corner, both", {"width": W, "height": H, "pixels": [[0, 0]]}, {"width": W, "height": H, "pixels": [[0, 0]]}),
        ("one pixel, bottom-right corner, both", {"width": W, "height": H, "pixels": [[W - 1, H - 1]]}, {"width": W, "height": H, "pixels": [[W - 1, H - 1]]}),
        ("one pixel, opposite corners", {"width": W, "height": H, "pixels": [[0, 0]]}, {"width": W, "height": H, "pixels": [[W - 1, H - 1]]}),
        ("one pixel, top-right vs bottom-left", {"width": W, "height": H, "pixels": [[W - 1, 0]]}, {"width": W, "height": H, "pixels": [[0, H - 1]]}),
        ("one pixel near a corner pixel", {"width": W, "height": H, "pixels": [[5, 3]]}, {"width": W, "height": H, "pixels": [[0, 0]]}),
        ("full vs full", {"width": W, "height": H, "full": True}, {"width": W, "height": H, "full": True}),
        ("full vs rectangle", {"width": W, "height": H, "full": True}, {"width": W, "height": H, "rects": [[10, 10, 400, 300]]}),
        ("shifted rectangles", {"width": W, "height": H, "rects": [[100, 100, 400, 300]]}, {"width": W, "height": H, "rects": [[108, 104, 408, 304]]}),
        ("rectangles far apart", {"width": W, "height": H, "rects": [[0, 0, 50, 50]]}, {"width": W, "height": H, "rects": [[700, 400, 853, 479]]}),
        ("edge-touching strips", {"width": W, "height": H, "rects": [[0, 0, 853, 3]]}, {"width": W, "height": H, "rects": [[850, 0, 853, 479]]}),
        ("1x1 both set", {"width": 1, "height": 1, "full": True}, {"width": 1, "height": 1, "full": True}),
        ("1x1 pred set", {"width": 1, "height": 1, "full": True}, {"width": 1, "height": 1}),
        ("1x7 column", {"width": 1, "height": 7, "pixels": [[0, 2], [0, 3]]}, {"width": 1, "height": 7, "pixels": [[0, 3], [0, 6]]}),
        ("9x1 row", {"width": 9, "height": 1, "pixels": [[2, 0], [3, 0]]}, {"width": 9, "height": 1, "pixels": [[8, 0]]}),
    ]
    for i in range(12):
        w = int(rng.integers(2, 40))
        h = int(rng.integers(2, 30))
        synthetic.append((f"random {w}x{h} #{i}", random_spec(rng, w, h, 0.3 + 0.04 * i), random_spec(rng, w, h, 0.5)))
    for i in range(6):
        synthetic.append((f"blobs 854x480 #{i}", blob_spec(rng, W, H, 1 + i), blob_spec(rng, W, H, 2 + i)))

    frames = []
    for name, pred_spec, gt_spec in synthetic:
        pred = render(pred_spec)
        gt = render(gt_spec)
        f, p, r = f_measure(pred, gt)
        frames.append({"name": name, "pred": pred_spec, "gt": gt_spec, "J": jaccard(gt, pred), "F": f, "precision": p, "recall": r})

    # Real masks: OSVOS results on DAVIS (854x480 palette PNGs). There is no separate ground truth
    # here, so pairs of real masks stand in for prediction / ground truth.
    real = []
    pairs = [("blackswan", i, "blackswan", i + 3) for i in range(0, 45, 4)]
    pairs += [("dog", i, "dog", i + 7) for i in range(0, 50, 9)]
    pairs += [("judo", i, "judo", i + 2) for i in range(0, 30, 5)]
    pairs += [("dog", i, "blackswan", i) for i in range(0, 50, 10)]
    for ps, pi, gs, gi in pairs:
        pred = read_nonzero(os.path.join(davis, ps, f"{pi:05d}.png"))
        gt = read_nonzero(os.path.join(davis, gs, f"{gi:05d}.png"))
        f, p, r = f_measure(pred, gt)
        real.append({"pred": f"{ps}/{pi:05d}.png", "gt": f"{gs}/{gi:05d}.png", "J": jaccard(gt, pred), "F": f, "precision": p, "recall": r, "predArea": int(pred.sum()), "gtArea": int(gt.sum())})

    # Folders, as `segr eval-masks` sees them: means over the ground-truth frames.
    def folder(pred_seq, gt_seq, shift, count):
        js, fs = [], []
        for i in range(count):
            gt = read_nonzero(os.path.join(davis, gt_seq, f"{i:05d}.png"))
            pp = os.path.join(davis, pred_seq, f"{i + shift:05d}.png")
            pred = read_nonzero(pp) if os.path.exists(pp) else np.zeros_like(gt)
            js.append(jaccard(gt, pred))
            fs.append(f_measure(pred, gt)[0])
        J = float(np.mean(js))
        F = float(np.mean(fs))
        return {"pred": pred_seq, "gt": gt_seq, "shift": shift, "count": count, "frameJ": js, "frameF": fs, "J": J, "F": F, "JF": (J + F) / 2}

    folders = [folder("dog", "blackswan", 0, 50), folder("blackswan", "blackswan", 3, 47), folder("judo", "judo", 1, 33)]

    stats_inputs = [[0.9], [0.2, 0.8], [0.1, 0.6, 0.7], [float(x) for x in np.linspace(1, 0, 10)], [0.5, float("nan"), 0.9, 0.3, 0.7], [float(x) for x in rng.random(57)], [float(x) for x in rng.random(300)]]
    stats = [{"values": [num(v) for v in vals], "stats": [num(x) for x in db_statistics(vals)]} for vals in stats_inputs]

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump({"generator": "test/golden/davis_reference.py", "boundTh": 0.008, "synthetic": frames, "real": real, "folders": folders, "statistics": stats}, fh)
    print(f"wrote {args.out}: {len(frames)} synthetic, {len(real)} real pairs, {len(folders)} folders, {len(stats)} statistics")


if __name__ == "__main__":
    main()
