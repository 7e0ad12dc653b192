"""Python side of bench/segment.bench.ts: times the same sam2-onnx v1 graphs on the same inputs
through onnxruntime (PyPI), plus the equivalent pre- and post-processing (Pillow bicubic resize +
normalisation, as the official SAM2VideoPredictor's `_load_img_as_tensor` does; numpy bilinear
upsample with align_corners=False + threshold).

  python bench/segment_ort.py MANIFEST.json

A worker, so the Node benchmark can alternate Node / Python stage by stage with sessions loaded once:
it loads every graph of the manifest, prints {"ready": true, "onnxruntime": version}, then for each
line {"stage": name, "iterations": n, "warmup": bool} on stdin runs a warm-up call (when asked) and n
timed calls and prints
{"stage": name, "ms": [n times]}. The manifest (written by the Node benchmark) names the ONNX file
and .npy inputs of each graph, a frame image, the low-res logits, the output size and the thread count.
"""

import json
import sys
import time

import numpy as np
import onnxruntime as ort
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1)


def samples_ms(fn, iterations, warmup):
    if warmup:
        fn()
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def preprocess(path):
    img = Image.open(path).convert("RGB").resize((1024, 1024), Image.BICUBIC)
    x = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return ((x - MEAN) / STD)[None].astype(np.float32)


def bilinear_index(out_size, in_size):
    scale = in_size / out_size
    real = np.maximum(0.0, scale * (np.arange(out_size) + 0.5) - 0.5)
    i0 = np.floor(real).astype(np.int64)
    i1 = np.where(i0 < in_size - 1, i0 + 1, i0)
    return i0, i1, (real - i0).astype(np.float32)


def postprocess(logits, width, height):
    x0, x1, wx = bilinear_index(width, logits.shape[1])
    y0, y1, wy = bilinear_index(height, logits.shape[0])
    top = logits[y0][:, x0] * (1 - wx) + logits[y0][:, x1] * wx
    bottom = logits[y1][:, x0] * (1 - wx) + logits[y1][:, x1] * wx
    up = top * (1 - wy)[:, None] + bottom * wy[:, None]
    return (up > 0).astype(np.uint8) * 255


def main():
    manifest = json.load(open(sys.argv[1]))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if manifest.get("threads", 0) > 0:
        options.intra_op_num_threads = manifest["threads"]
    runs = {}
    for stage, spec in manifest["graphs"].items():
        session = ort.InferenceSession(spec["file"], options, providers=["CPUExecutionProvider"])
        feeds = {name: np.load(path) for name, path in spec["inputs"].items()}
        runs[stage] = (lambda s, f: lambda: s.run(None, f))(session, feeds)
    runs["preprocess"] = lambda: preprocess(manifest["frame"])
    logits = np.load(manifest["logits"])
    runs["postprocess"] = lambda: postprocess(logits, manifest["width"], manifest["height"])
    print(json.dumps({"ready": True, "onnxruntime": ort.__version__}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        ms = samples_ms(runs[req["stage"]], req["iterations"], req.get("warmup", True))
        print(json.dumps({"stage": req["stage"], "ms": ms}), flush=True)


if __name__ == "__main__":
    main()
