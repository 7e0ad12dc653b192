#!/usr/bin/env python3
"""The official SAM2 side of `make verify-sam2` (test/integration/real-sam2.test.ts runs the Node side).

  verify_sam2.py checkpoint --model-cfg configs/sam2.1/sam2.1_hiera_t.yaml --out model.pt [--seed 0]
      The official architecture from the sam2 package's config with seeded random weights, saved as a
      checkpoint file in the layout of the released ones ({"model": state_dict}), so the exporter reads
      it exactly as it reads sam2.1_hiera_tiny.pt. One change to the random draw: the object-score
      head's last bias is set to +OBJECT_PRESENT_BIAS (see below).

  verify_sam2.py official --checkpoint model.pt --model-cfg ... --frames DIR --keyframe K
                          --box x1,y1,x2,y2 --point x,y --out DIR [--threads N]
      Runs the official predictors as Seg-ReSearch does and dumps what the Node loop is compared with:
      - SAM2VideoPredictor (post_segmentation/sam2_okvos.py): a box call on the keyframe, then a click
        call (which reuses the box mask's logits), propagation forward to the last frame, then in
        reverse to frame 0. Per frame: the low-res logits the predictor stores (256x256, after its
        hole fill) and the video-size binary mask it yields.
      - SAM2ImagePredictor on the keyframe image: the box (3 masks, best score), then the click with the
        box's low-res logits as mask_input (3 masks, best score): segflow's image path on decoder.onnx.
      Files: video-logits-<t>.f32, video-mask-<t>.u8, image-logits.f32, image-mask.u8 and official.json
      (frames, sizes, object scores, timings).

Two things the official code needs on a CPU-only install, both stated here:
- SAM2 fills small background holes (<= fill_hole_area px, 8-connected) with a CUDA-only op
  (`sam2._C.get_connected_componnets`); without the extension it warns and skips the fill. The fill is
  part of the reference output, so the op is supplied with scipy's 8-connected labelling (same
  outputs: per-pixel component label and area). `--no-hole-fill-op` leaves it out.
- Random weights: the object-score head of an untrained model says "absent" or "present" by chance,
  and "absent" gates every tracked mask to -1024 (a constant: nothing to compare). A trained model
  says "present" for a visible, prompted object, so the checkpoint's object-score bias is set to +10.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

OBJECT_PRESENT_BIAS = 10.0


def install_hole_fill_op() -> None:
    """sam2.utils.misc.get_connected_components without the CUDA extension: scipy's labelling."""
    from scipy import ndimage

    import sam2.utils.misc as misc

    eight = np.ones((3, 3), dtype=bool)

    def get_connected_components(mask: torch.Tensor):
        m = mask.to(torch.uint8).cpu().numpy()
        labels = np.zeros(m.shape, np.int32)
        areas = np.zeros(m.shape, np.int32)
        for i in range(m.shape[0]):
            lab, _ = ndimage.label(m[i, 0], structure=eight)
            counts = np.bincount(lab.ravel())
            counts[0] = 0
            labels[i, 0] = lab
            areas[i, 0] = counts[lab]
        return torch.from_numpy(labels).to(mask.device), torch.from_numpy(areas).to(mask.device)

    misc.get_connected_components = get_connected_components


def cmd_checkpoint(args) -> int:
    from sam2.build_sam import build_sam2

    torch.manual_seed(args.seed)
    model = build_sam2(args.model_cfg, ckpt_path=None, device="cpu", mode="eval")
    head = model.sam_mask_decoder.pred_obj_score_head
    last = head.layers[-1] if hasattr(head, "layers") else head
    with torch.no_grad():
        last.bias.fill_(OBJECT_PRESENT_BIAS)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, out)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {out}: {args.model_cfg}, seed {args.seed}, {n / 1e6:.1f}M parameters")
    return 0


def write_f32(path: Path, t) -> None:
    np.ascontiguousarray(np.asarray(t, dtype=np.float32)).tofile(path)


def write_u8(path: Path, m) -> None:
    np.ascontiguousarray(np.asarray(m, dtype=np.uint8)).tofile(path)


def run_video(args, frames: list[Path], out: Path, box, point) -> dict:
    from sam2.build_sam import build_sam2_video_predictor

    predictor = build_sam2_video_predictor(args.model_cfg, args.checkpoint, device="cpu")
    t0 = time.perf_counter()
    state = predictor.init_state(video_path=str(args.frames))
    t_load = time.perf_counter() - t0
    k = args.keyframe
    t0 = time.perf_counter()
    predictor.add_new_points_or_box(state, frame_idx=k, obj_id=1, box=np.array(box, np.float32))
    predictor.add_new_points_or_box(
        state, frame_idx=k, obj_id=1, points=np.array([point], np.float32), labels=np.array([1], np.int32)
    )
    masks: dict[int, np.ndarray] = {}
    for reverse in (False, True):
        for t, _, video_logits in predictor.propagate_in_video(state, start_frame_idx=k, reverse=reverse):
            masks[t] = (video_logits[0, 0] > 0.0).cpu().numpy()
    t_track = time.perf_counter() - t0
    per_obj = state["output_dict_per_obj"][0]
    scores = {}
    for t in range(len(frames)):
        entry = per_obj["cond_frame_outputs"].get(t) or per_obj["non_cond_frame_outputs"].get(t)
        if entry is None or t not in masks:
            sys.exit(f"the official predictor produced no output for frame {t}")
        write_f32(out / f"video-logits-{t}.f32", entry["pred_masks"][0, 0].float().cpu().numpy())
        write_u8(out / f"video-mask-{t}.u8", masks[t])
        scores[t] = float(entry["object_score_logits"].flatten()[0])
    return {
        "objectScores": [scores[t] for t in range(len(frames))],
        # init_state decodes and resizes every frame up front; the rest is per-frame model work
        "msPerFrame": 1000 * (t_load + t_track) / len(frames),
        "msLoadFrames": 1000 * t_load,
        "fillHoleArea": predictor.fill_hole_area,
    }


def run_image(args, frames: list[Path], out: Path, box, point) -> dict:
    from PIL import Image
    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    predictor = SAM2ImagePredictor(build_sam2(args.model_cfg, args.checkpoint, device="cpu"))
    image = np.asarray(Image.open(frames[args.keyframe]).convert("RGB"))
    t0 = time.perf_counter()
    predictor.set_image(image)
    _, scores, low = predictor.predict(box=np.array(box, np.float32), multimask_output=True, return_logits=True)
    best = int(np.argmax(scores))
    full, scores2, low2 = predictor.predict(
        point_coords=np.array([point], np.float32),
        point_labels=np.array([1], np.int32),
        mask_input=low[best][None],
        multimask_output=True,
        return_logits=True,
    )
    best2 = int(np.argmax(scores2))
    ms = 1000 * (time.perf_counter() - t0)
    write_f32(out / "image-logits.f32", low2[best2])
    write_u8(out / "image-mask.u8", full[best2] > 0.0)
    return {"boxToken": best, "pointToken": best2, "iou": float(scores2[best2]), "ms": ms}


def cmd_official(args) -> int:
    from PIL import Image

    torch.set_num_threads(args.threads)
    if not args.no_hole_fill_op:
        install_hole_fill_op()
    frames = sorted(p for p in Path(args.frames).iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    if not frames:
        sys.exit(f"{args.frames}: no JPEG frames (SAM2VideoPredictor reads a folder of .jpg frames)")
    if not 0 <= args.keyframe < len(frames):
        sys.exit(f"--keyframe {args.keyframe} is not a frame of {args.frames} (0..{len(frames) - 1})")
    box = [float(v) for v in args.box.split(",")]
    point = [float(v) for v in args.point.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    width, height = Image.open(frames[0]).size
    with torch.inference_mode():
        video = run_video(args, frames, out, box, point)
        image = run_image(args, frames, out, box, point)
    meta = {
        "frames": [p.name for p in frames],
        "width": width,
        "height": height,
        "keyframe": args.keyframe,
        "box": box,
        "point": point,
        "threads": args.threads,
        "torch": torch.__version__,
        "video": video,
        "image": image,
    }
    (out / "official.json").write_text(json.dumps(meta, indent=2))
    print(f"official predictors: {len(frames)} frames, {video['msPerFrame']:.0f} ms/frame (video), image {image['ms']:.0f} ms")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("checkpoint", help="a seeded random-weights checkpoint of a sam2 config")
    c.add_argument("--model-cfg", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--seed", type=int, default=0)
    o = sub.add_parser("official", help="run the official video and image predictors, dump their outputs")
    o.add_argument("--checkpoint", required=True)
    o.add_argument("--model-cfg", required=True)
    o.add_argument("--frames", required=True, help="folder of JPEG frames")
    o.add_argument("--keyframe", type=int, required=True)
    o.add_argument("--box", required=True, help="x1,y1,x2,y2 in pixels")
    o.add_argument("--point", required=True, help="x,y in pixels")
    o.add_argument("--out", required=True)
    o.add_argument("--threads", type=int, default=1)
    o.add_argument("--no-hole-fill-op", action="store_true", help="leave SAM2's CUDA-only hole fill out")
    args = ap.parse_args(argv)
    return cmd_checkpoint(args) if args.cmd == "checkpoint" else cmd_official(args)


if __name__ == "__main__":
    sys.exit(main())
