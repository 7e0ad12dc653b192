"""Synthetic masks shared by the golden generators and the TypeScript tests.

A mask spec is a JSON object: {"width", "height", and any of "rects" (inclusive [x1, y1, x2, y2]),
"pixels" ([x, y]), "full": true, "bits" (row-major string of '0'/'1')}. The TypeScript side renders
the same specs in test/unit/core/golden-masks.ts.
"""
import numpy as np


def render(spec):
    w, h = spec["width"], spec["height"]
    m = np.zeros((h, w), dtype=np.uint8)
    if spec.get("full"):
        m[:, :] = 1
    for x1, y1, x2, y2 in spec.get("rects", []):
        m[y1 : y2 + 1, x1 : x2 + 1] = 1
    for x, y in spec.get("pixels", []):
        m[y, x] = 1
    if "bits" in spec:
        m = np.array([int(c) for c in spec["bits"]], dtype=np.uint8).reshape(h, w)
    return m


def random_spec(rng, w, h, density):
    bits = (rng.random((h, w)) < density).astype(np.uint8)
    return {"width": w, "height": h, "bits": "".join(str(int(b)) for b in bits.ravel())}


def blob_spec(rng, w, h, n):
    """A few random rectangles: masks with real boundaries and several components."""
    rects = []
    for _ in range(n):
        x1 = int(rng.integers(0, w))
        y1 = int(rng.integers(0, h))
        x2 = int(min(w - 1, x1 + rng.integers(0, max(1, w // 3))))
        y2 = int(min(h - 1, y1 + rng.integers(0, max(1, h // 3))))
        rects.append([x1, y1, x2, y2])
    return {"width": w, "height": h, "rects": rects}
