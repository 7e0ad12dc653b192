#!/usr/bin/env python3
"""Export SAM2 / SAM2.1 to the "sam2-onnx v1" contract used by segflow (activities/segment).

Writes into --out:
  encoder.onnx           samexporter-compatible image encoder (image -> high_res_feats_0/1, image_embed)
  video_decoder.onnx     prompt encoder + mask decoder, all 4 tokens, object-gated masks and pointers
  memory_attention.onnx  memory bank (F frames, P pointers, dynamic) -> pix_feat_with_mem
  memory_encoder.onnx    mask logits -> maskmem_features (upsample, binarise/sigmoid, no-object embed)
  sam2_config.json       model id, sam2 commit and the flags the TypeScript loop needs
  decoder.onnx           (with --image-decoder) samexporter-compatible decoder: 3 multimask tokens

Tensor names, dtypes and shapes are those of ../../activities/segment/contract.ts and
../shared/spec/sam2-onnx-contract.md section 3. Opset 17, float32 (memory_1_tpos int64), batch 1.

  python scripts/sam2-export/export_sam2_onnx.py \
      --checkpoint sam2.1_hiera_large.pt --model-cfg configs/sam2.1/sam2.1_hiera_l.yaml --out models/

  # parity check: the official SAM2VideoPredictor beside a Python loop over the ONNX files
  python scripts/sam2-export/export_sam2_onnx.py --checkpoint ... --model-cfg ... --out models/ \
      --verify clip_frames/ --keyframe 0 --box 100,80,400,300 [--point 250,190]

--verify prints the per-frame IoU between the two (target >= 0.99) and writes golden tensors for
frames k, k+-1, k+-7 to OUT/golden/ (npz: chosen low-res logits, object score, pointer, memory plan)
so the TypeScript loop can be checked against real weights.

Environment: .venv/sam2 from scripts/setup-sam2.sh (`make deps-sam2`: torch 2.14.1, sam2==1.1.0,
requirements.txt beside this file). Runs on CPU; a GPU only speeds up --verify.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CONTRACT = "sam2-onnx v1"
OPSET = 17
NO_OBJ_SCORE = -1024.0


# --------------------------------------------------------------------------------------------
# Real-valued RoPE (the upstream complex RoPE does not export: facebookresearch/sam2#186)
# --------------------------------------------------------------------------------------------


def axial_cos_sin(dim: int, end_x: int, end_y: int, theta: float = 10000.0):
    """cos/sin of sam2.modeling.position_encoding.compute_axial_cis, [end_x*end_y, dim/2]."""
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 4)[: (dim // 4)].float() / dim))
    t = torch.arange(end_x * end_y, dtype=torch.float32)
    t_x = t % end_x
    t_y = torch.div(t, end_x, rounding_mode="floor")
    angles = torch.cat([torch.outer(t_x, freqs), torch.outer(t_y, freqs)], dim=-1)
    return torch.cos(angles), torch.sin(angles)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """view_as_complex(x) * polar(1, angle), in real arithmetic; x [..., N, D], cos/sin [N, D/2]."""
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    x0, x1 = pairs[..., 0], pairs[..., 1]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2).type_as(x)


def patch_rope_attention():
    """Replaces RoPEAttention.forward with a real-valued one. Keys past the RoPE part (the object
    pointer tokens, `num_k_exclude_rope`) get the identity rotation (cos 1, sin 0) instead of a
    slice assignment, so the pointer count stays a dynamic axis of memory_0."""
    from sam2.modeling.sam.transformer import RoPEAttention

    def forward(self, q, k, v, num_k_exclude_rope=0):
        q = self._separate_heads(self.q_proj(q), self.num_heads)
        k = self._separate_heads(self.k_proj(k), self.num_heads)
        v = self._separate_heads(self.v_proj(v), self.num_heads)
        n_q = q.shape[-2]
        side = int(math.sqrt(n_q))
        rope = self.compute_cis.keywords  # partial(compute_axial_cis, dim=..., theta=...)
        cos, sin = axial_cos_sin(rope["dim"], side, side, rope.get("theta", 10000.0))
        cos, sin = cos.to(q.device), sin.to(q.device)
        q = rotate(q, cos, sin)
        n_rope = k.shape[-2] - num_k_exclude_rope
        if self.rope_k_repeat:
            repeats = torch.div(n_rope, n_q, rounding_mode="floor") if torch.is_tensor(n_rope) else n_rope // n_q
            cos_k = cos.unsqueeze(0).expand(repeats, -1, -1).reshape(-1, cos.shape[-1])
            sin_k = sin.unsqueeze(0).expand(repeats, -1, -1).reshape(-1, sin.shape[-1])
        else:
            cos_k, sin_k = cos, sin
        tail = k.shape[-2] - cos_k.shape[0]
        cos_k = torch.cat([cos_k, torch.ones(tail, cos.shape[-1], device=q.device)], dim=0)
        sin_k = torch.cat([sin_k, torch.zeros(tail, sin.shape[-1], device=q.device)], dim=0)
        k = rotate(k, cos_k, sin_k)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(self._recombine_heads(out))

    RoPEAttention.forward = forward


def get_1d_sine_pe(pos: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """sam2.modeling.sam2_utils.get_1d_sine_pe."""
    pe_dim = dim // 2
    dim_t = torch.arange(pe_dim, dtype=torch.float32, device=pos.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / pe_dim)
    pos_embed = pos.unsqueeze(-1) / dim_t
    return torch.cat([pos_embed.sin(), pos_embed.cos()], dim=-1)


# --------------------------------------------------------------------------------------------
# The five graphs
# --------------------------------------------------------------------------------------------


def feature_sizes(sam):
    """The backbone's three FPN sizes (strides 4, 8, 16). SAM2ImagePredictor keeps them as
    `_bb_feat_sizes`; the model (and so SAM2VideoPredictor) does not, so they come from image_size."""
    s = sam.image_size
    return [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]


class ImageEncoder(nn.Module):
    """samexporter's SAM2ImageEncoder: FPN levels after conv_s0/conv_s1, top level + no_mem_embed."""

    def __init__(self, sam):
        super().__init__()
        self.sam = sam

    def forward(self, image):
        sam = self.sam
        backbone_out = sam.forward_image(image)
        _, vision_feats, _, _ = sam._prepare_backbone_features(backbone_out)
        if sam.directly_add_no_mem_embed:
            vision_feats[-1] = vision_feats[-1] + sam.no_mem_embed
        feats = [
            feat.permute(1, 2, 0).reshape(1, -1, *size)
            for feat, size in zip(vision_feats[::-1], feature_sizes(sam)[::-1])
        ][::-1]
        return feats[0], feats[1], feats[2]


class PromptDecoder(nn.Module):
    """Prompt encoder + mask decoder on (points, labels, mask_input), as samexporter embeds them
    (the +0.5 shift, the pad point with label -1, /image_size), but keeping all 4 tokens, the
    object score and the object pointers (video) or only tokens 1..3 (samexporter decoder)."""

    def __init__(self, sam, video: bool):
        super().__init__()
        self.sam = sam
        self.video = video
        self.register_buffer("dense_pe", sam.sam_prompt_encoder.get_dense_pe().detach().clone())

    def embed_points(self, coords, labels):
        pe = self.sam.sam_prompt_encoder
        coords = coords + 0.5
        coords = torch.cat([coords, torch.zeros_like(coords[:, :1, :])], dim=1)
        labels = torch.cat([labels, -torch.ones_like(labels[:, :1])], dim=1)
        coords = coords / self.sam.image_size
        emb = pe.pe_layer._pe_encoding(coords)
        lab = labels.unsqueeze(-1).expand_as(emb)
        emb = emb * (lab != -1)
        emb = emb + pe.not_a_point_embed.weight * (lab == -1)
        for i in range(pe.num_point_embeddings):
            emb = emb + pe.point_embeddings[i].weight * (lab == i)
        return emb

    def embed_mask(self, mask_input, has_mask_input):
        pe = self.sam.sam_prompt_encoder
        dense = has_mask_input * pe.mask_downscaling(mask_input)
        return dense + (1 - has_mask_input) * pe.no_mask_embed.weight.reshape(1, -1, 1, 1)

    def forward(self, image_embed, high_res_feats_0, high_res_feats_1, point_coords, point_labels, mask_input, has_mask_input):
        sam = self.sam
        sparse = self.embed_points(point_coords, point_labels)
        dense = self.embed_mask(mask_input, has_mask_input)
        masks, iou, tokens_out, object_score_logits = sam.sam_mask_decoder.predict_masks(
            image_embeddings=image_embed,
            image_pe=self.dense_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            repeat_image=False,
            high_res_features=[high_res_feats_0, high_res_feats_1],
        )
        masks = torch.clamp(masks, -32.0, 32.0)
        if not self.video:
            return masks[:, 1:], iou[:, 1:]
        present = object_score_logits > 0
        masks = torch.where(present[:, :, None, None], masks, torch.full_like(masks, NO_OBJ_SCORE))
        obj_ptrs = sam.obj_ptr_proj(tokens_out)
        if sam.pred_obj_scores:
            lam = object_score_logits.sigmoid() if sam.soft_no_obj_ptr else present.float()
            lam = lam[:, :, None]
            if sam.fixed_no_obj_ptr:
                obj_ptrs = lam * obj_ptrs
            obj_ptrs = obj_ptrs + (1 - lam) * sam.no_obj_ptr
        return masks, iou, obj_ptrs, object_score_logits


class MemoryAttention(nn.Module):
    """_prepare_memory_conditioned_features after the selection: the selection, offsets and the
    tpos rows come from TypeScript; the constants (level-2 position, maskmem_pos_enc,
    maskmem_tpos_enc, the pointer tpos projection) are baked in."""

    def __init__(self, sam, vision_pos, maskmem_pos):
        super().__init__()
        self.sam = sam
        self.register_buffer("vision_pos", vision_pos)  # [4096,1,256]
        self.register_buffer("maskmem_pos", maskmem_pos)  # [4096,1,64]

    def forward(self, current_vision_feat, memory_1, memory_1_tpos, memory_0, memory_0_pos):
        sam = self.sam
        c = sam.hidden_dim
        mem_dim = sam.mem_dim
        curr = current_vision_feat
        if sam.directly_add_no_mem_embed:
            curr = curr - sam.no_mem_embed.reshape(1, -1, 1, 1)
        curr = curr.flatten(2).permute(2, 0, 1)
        memory = memory_1.flatten(2).permute(0, 2, 1).reshape(-1, 1, mem_dim)
        tpos = sam.maskmem_tpos_enc[memory_1_tpos].reshape(-1, 1, 1, mem_dim)
        memory_pos = (self.maskmem_pos.unsqueeze(0) + tpos).reshape(-1, 1, mem_dim)
        n_ptr = memory_0.shape[0]
        if sam.add_tpos_enc_to_obj_ptrs:
            tpos_dim = c if sam.proj_tpos_enc_in_obj_ptrs else mem_dim
            obj_pos = sam.obj_ptr_tpos_proj(get_1d_sine_pe(memory_0_pos, dim=tpos_dim))
        else:
            obj_pos = torch.zeros(n_ptr, mem_dim, device=memory_0.device) + 0 * memory_0_pos.unsqueeze(-1)
        split = c // mem_dim
        ptrs = memory_0.reshape(-1, 1, split, mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
        obj_pos = obj_pos.unsqueeze(1).repeat_interleave(split, dim=0)
        pix = sam.memory_attention(
            curr=curr,
            curr_pos=self.vision_pos,
            memory=torch.cat([memory, ptrs], dim=0),
            memory_pos=torch.cat([memory_pos, obj_pos], dim=0),
            num_obj_ptr_tokens=ptrs.shape[0],
        )
        side = int(math.sqrt(curr.shape[0]))
        return pix.permute(1, 2, 0).reshape(1, c, side, side)


class MemoryEncoder(nn.Module):
    """_encode_new_memory: upsample the low-res logits to 1024, binarise (prompted frames) or
    sigmoid, x20 - 10, memory encoder on the raw features, no-object embedding when absent."""

    def __init__(self, sam):
        super().__init__()
        self.sam = sam

    def forward(self, current_vision_feat, mask_logits, binarize, object_score_logits):
        sam = self.sam
        pix_feat = current_vision_feat
        if sam.directly_add_no_mem_embed:
            pix_feat = pix_feat - sam.no_mem_embed.reshape(1, -1, 1, 1)
        high = F.interpolate(mask_logits, size=(sam.image_size, sam.image_size), mode="bilinear", align_corners=False)
        b = binarize.reshape(1, 1, 1, 1)
        mask = b * (high > 0).float() + (1 - b) * torch.sigmoid(high)
        mask = mask * sam.sigmoid_scale_for_mem_enc + sam.sigmoid_bias_for_mem_enc
        feats = sam.memory_encoder(pix_feat, mask, skip_mask_sigmoid=True)["vision_features"]
        if getattr(sam, "no_obj_embed_spatial", None) is not None:
            absent = 1 - (object_score_logits > 0).float()
            feats = feats + absent[..., None, None] * sam.no_obj_embed_spatial[..., None, None]
        return feats


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


def build(checkpoint: str, model_cfg: str, device: str):
    from sam2.build_sam import build_sam2_video_predictor

    patch_rope_attention()
    predictor = build_sam2_video_predictor(model_cfg, checkpoint, device=device)
    predictor.eval()
    return predictor


def shape_constants(sam, device):
    """The level-2 position encoding and maskmem_pos_enc depend only on shapes: computed once."""
    with torch.no_grad():
        image = torch.zeros(1, 3, sam.image_size, sam.image_size, device=device)
        backbone_out = sam.forward_image(image)
        _, vision_feats, vision_pos, sizes = sam._prepare_backbone_features(backbone_out)
        h, w = sizes[-1]
        pix = vision_feats[-1].permute(1, 2, 0).reshape(1, sam.hidden_dim, h, w)
        mask = torch.zeros(1, 1, sam.image_size, sam.image_size, device=device)
        out = sam.memory_encoder(pix, mask, skip_mask_sigmoid=True)
        maskmem_pos = out["vision_pos_enc"][-1].flatten(2).permute(2, 0, 1)
    return vision_pos[-1].detach().clone(), maskmem_pos.detach().clone()


def sam2_source() -> dict:
    """Which sam2 built the graphs: the PyPI release (`sam2_version`), or a git checkout's commit
    when the package was installed from one (a direct_url.json with vcs_info)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("sam2")
    except PackageNotFoundError:
        return {"sam2_version": "unknown (not installed as a package)"}
    source = {"sam2_version": dist.version}
    direct = dist.read_text("direct_url.json")
    commit = json.loads(direct).get("vcs_info", {}).get("commit_id") if direct else None
    if commit:
        source["sam2_commit"] = commit
    return source


def sam2_config(sam, model_id: str) -> dict:
    return {
        "contract": CONTRACT,
        "model_id": model_id,
        **sam2_source(),
        "opset": OPSET,
        "image_size": sam.image_size,
        "num_maskmem": sam.num_maskmem,
        "max_obj_ptrs_in_encoder": sam.max_obj_ptrs_in_encoder,
        "memory_temporal_stride_for_eval": sam.memory_temporal_stride_for_eval,
        "max_cond_frames_in_attn": sam.max_cond_frames_in_attn,
        "use_obj_ptrs_in_encoder": sam.use_obj_ptrs_in_encoder,
        "add_tpos_enc_to_obj_ptrs": sam.add_tpos_enc_to_obj_ptrs,
        "use_signed_tpos_enc_to_obj_ptrs": getattr(sam, "use_signed_tpos_enc_to_obj_ptrs", False),
        "proj_tpos_enc_in_obj_ptrs": sam.proj_tpos_enc_in_obj_ptrs,
        "only_obj_ptrs_in_the_past_for_eval": sam.only_obj_ptrs_in_the_past_for_eval,
        "multimask_output_in_sam": sam.multimask_output_in_sam,
        "multimask_output_for_tracking": sam.multimask_output_for_tracking,
        "multimask_min_pt_num": sam.multimask_min_pt_num,
        "multimask_max_pt_num": sam.multimask_max_pt_num,
        "use_multimask_token_for_obj_ptr": sam.use_multimask_token_for_obj_ptr,
        "dynamic_multimask_via_stability": sam.sam_mask_decoder.dynamic_multimask_via_stability,
        "dynamic_multimask_stability_delta": sam.sam_mask_decoder.dynamic_multimask_stability_delta,
        "dynamic_multimask_stability_thresh": sam.sam_mask_decoder.dynamic_multimask_stability_thresh,
        "binarize_mask_from_pts_for_mem_enc": sam.binarize_mask_from_pts_for_mem_enc,
        "fill_hole_area": sam.fill_hole_area,
        "mask_threshold": 0.0,
        "pixel_mean": [0.485, 0.456, 0.406],
        "pixel_std": [0.229, 0.224, 0.225],
    }


def export(module, args, path: Path, inputs, outputs, dynamic_axes):
    with torch.no_grad():
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=True,
            # the TorchScript exporter, which these graphs were written for and verified with
            # (make verify-sam2); torch >= 2.9 defaults to the dynamo exporter, which needs
            # onnxscript and was not tried on them
            dynamo=False,
        )
    import onnx

    onnx.checker.check_model(str(path))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


def export_all(predictor, out: Path, image_decoder: bool, model_id: str, device: str):
    sam = predictor
    out.mkdir(parents=True, exist_ok=True)
    vision_pos, maskmem_pos = shape_constants(sam, device)
    t = lambda *shape: torch.randn(*shape, device=device)  # noqa: E731
    image = t(1, 3, sam.image_size, sam.image_size)
    export(ImageEncoder(sam), (image,), out / "encoder.onnx", ["image"], ["high_res_feats_0", "high_res_feats_1", "image_embed"], None)
    with torch.no_grad():
        hr0, hr1, embed = ImageEncoder(sam)(image)
    dec_inputs = ["image_embed", "high_res_feats_0", "high_res_feats_1", "point_coords", "point_labels", "mask_input", "has_mask_input"]
    dec_args = (
        embed,
        hr0,
        hr1,
        torch.tensor([[[100.0, 120.0], [600.0, 700.0]]], device=device),
        torch.tensor([[2.0, 3.0]], device=device),
        torch.zeros(1, 1, 256, 256, device=device),
        torch.zeros(1, device=device),
    )
    dec_axes = {"point_coords": {1: "P"}, "point_labels": {1: "P"}}
    export(
        PromptDecoder(sam, video=True),
        dec_args,
        out / "video_decoder.onnx",
        dec_inputs,
        ["masks", "iou_predictions", "obj_ptrs", "object_score_logits"],
        dec_axes,
    )
    if image_decoder:
        export(PromptDecoder(sam, video=False), dec_args, out / "decoder.onnx", dec_inputs, ["masks", "iou_predictions"], dec_axes)
    f_mem, p_ptr = 3, 5  # example sizes; both axes are dynamic
    export(
        MemoryAttention(sam, vision_pos, maskmem_pos),
        (
            embed,
            t(f_mem, sam.mem_dim, 64, 64),
            torch.tensor([6, 1, 0], dtype=torch.int64, device=device),
            t(p_ptr, sam.hidden_dim),
            torch.tensor([0.2, 1 / 15, 2 / 15, 3 / 15, 4 / 15], device=device),
        ),
        out / "memory_attention.onnx",
        ["current_vision_feat", "memory_1", "memory_1_tpos", "memory_0", "memory_0_pos"],
        ["pix_feat_with_mem"],
        {"memory_1": {0: "F"}, "memory_1_tpos": {0: "F"}, "memory_0": {0: "P"}, "memory_0_pos": {0: "P"}},
    )
    export(
        MemoryEncoder(sam),
        (embed, t(1, 1, 256, 256), torch.ones(1, device=device), torch.ones(1, 1, device=device)),
        out / "memory_encoder.onnx",
        ["current_vision_feat", "mask_logits", "binarize", "object_score_logits"],
        ["maskmem_features"],
        None,
    )
    (out / "sam2_config.json").write_text(json.dumps(sam2_config(sam, model_id), indent=2))
    print(f"wrote {out / 'sam2_config.json'}")


# --------------------------------------------------------------------------------------------
# --verify: official predictor beside a Python loop over the ONNX files
# --------------------------------------------------------------------------------------------


def fill_holes(logits: np.ndarray, max_area: int) -> np.ndarray:
    """fill_holes_in_mask_scores on one [H,W] map: 8-connected background components <= max_area -> 0.1."""
    out = logits.copy()
    if max_area <= 0:
        return out
    h, w = logits.shape
    seen = np.zeros((h, w), bool)
    bg = logits <= 0
    for sy in range(h):
        for sx in range(w):
            if seen[sy, sx] or not bg[sy, sx]:
                continue
            stack, comp = [(sy, sx)], []
            seen[sy, sx] = True
            while stack:
                y, x = stack.pop()
                comp.append((y, x))
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        yy, xx = y + dy, x + dx
                        if 0 <= yy < h and 0 <= xx < w and not seen[yy, xx] and bg[yy, xx]:
                            seen[yy, xx] = True
                            stack.append((yy, xx))
            if len(comp) <= max_area:
                for y, x in comp:
                    out[y, x] = 0.1
    return out


def plan_memory(cfg, t, reverse, num_frames, cond, tracked):
    """memory-bank.ts planMemory for one conditioning frame (mirrors sam2_base.py)."""
    n, stride = cfg["num_maskmem"], cfg["memory_temporal_stride_for_eval"]
    memory = [(cond, n - 1)]
    for t_pos in range(1, n):
        t_rel = n - t_pos
        if t_rel == 1:
            prev = t + t_rel if reverse else t - t_rel
        elif not reverse:
            prev = ((t - 2) // stride) * stride - (t_rel - 2) * stride
        else:
            prev = -(-(t + 2) // stride) * stride + (t_rel - 2) * stride
        if prev in tracked:
            memory.append((prev, n - t_pos - 1))
    m = min(num_frames, cfg["max_obj_ptrs_in_encoder"])
    sign = -1 if reverse else 1
    ptrs = []
    if not cfg["only_obj_ptrs_in_the_past_for_eval"] or (cond >= t if reverse else cond <= t):
        off = (t - cond) * sign if cfg["use_signed_tpos_enc_to_obj_ptrs"] else abs(t - cond)
        ptrs.append((cond, off))
    for d in range(1, m):
        f = t + d if reverse else t - d
        if f < 0 or f >= num_frames:
            break
        if f in tracked:
            ptrs.append((f, d))
    return memory, [(f, o, o / (m - 1) if m > 1 else 0.0) for f, o in ptrs]


def choose(masks, iou, multimask, cfg):
    best = 1 + int(np.argmax(iou[0, 1:]))
    if multimask:
        return best, (best if cfg["use_multimask_token_for_obj_ptr"] else 0)
    if not cfg["dynamic_multimask_via_stability"]:
        return 0, 0
    m0 = masks[0, 0]
    delta = cfg["dynamic_multimask_stability_delta"]
    union = (m0 > -delta).sum()
    stability = (m0 > delta).sum() / union if union > 0 else 1.0
    return (0 if stability >= cfg["dynamic_multimask_stability_thresh"] else best), 0


def to_bf16(x: np.ndarray) -> np.ndarray:
    return torch.from_numpy(x).to(torch.bfloat16).to(torch.float32).numpy()


def onnx_loop(out: Path, frames, keyframe, box, point, size):
    """A Python twin of activities/segment/sam2-video.ts over the ONNX files."""
    import onnxruntime as ort
    from PIL import Image

    cfg = json.loads((out / "sam2_config.json").read_text())
    sess = {k: ort.InferenceSession(str(out / f"{k}.onnx"), providers=["CPUExecutionProvider"]) for k in ("encoder", "video_decoder", "memory_attention", "memory_encoder")}
    mean = np.array(cfg["pixel_mean"], np.float32)[:, None, None]
    std = np.array(cfg["pixel_std"], np.float32)[:, None, None]
    w, h = size
    sx, sy = 1024 / w, 1024 / h

    def encode(path):
        img = np.asarray(Image.open(path).convert("RGB").resize((1024, 1024)), np.float32).transpose(2, 0, 1) / 255.0
        hr0, hr1, embed = sess["encoder"].run(None, {"image": ((img - mean) / std)[None].astype(np.float32)})
        return hr0, hr1, embed

    def decode(enc, embed, pts, labels, mask_input=None):
        hr0, hr1, _ = enc
        if not pts:
            pts, labels = [(0.0, 0.0)], [-1.0]
        feeds = {
            "image_embed": embed,
            "high_res_feats_0": hr0,
            "high_res_feats_1": hr1,
            "point_coords": np.array([[(x * sx, y * sy) if l != -1 else (0, 0) for (x, y), l in zip(pts, labels)]], np.float32),
            "point_labels": np.array([labels], np.float32),
            "mask_input": (np.clip(mask_input, -32, 32) if mask_input is not None else np.zeros((256, 256), np.float32))[None, None].astype(np.float32),
            "has_mask_input": np.array([1.0 if mask_input is not None else 0.0], np.float32),
        }
        return sess["video_decoder"].run(None, feeds)

    def memenc(embed, logits, binarize, score):
        return sess["memory_encoder"].run(None, {
            "current_vision_feat": embed,
            "mask_logits": logits[None, None].astype(np.float32),
            "binarize": np.array([binarize], np.float32),
            "object_score_logits": np.array([[score]], np.float32),
        })[0]

    n = len(frames)
    states, results, golden = {}, {}, {}
    order = [keyframe] + list(range(keyframe + 1, n)) + list(range(keyframe - 1, -1, -1))
    for t in order:
        enc = encode(frames[t])
        embed = enc[2]
        plan = None
        if t == keyframe:
            logits = None
            if box is not None:
                masks, iou, ptrs, score = decode(enc, embed, [box[:2], box[2:]], [2.0, 3.0])
                mt, pt = choose(masks, iou, False, cfg)
                logits = fill_holes(masks[0, mt], cfg["fill_hole_area"])
            if point is not None:
                masks, iou, ptrs, score = decode(enc, embed, [point], [1.0], logits)
                mt, pt = choose(masks, iou, True, cfg)
                logits = fill_holes(masks[0, mt], cfg["fill_hole_area"])
            s = float(score[0, 0])
            mem = memenc(embed, logits, 1.0 if cfg["binarize_mask_from_pts_for_mem_enc"] else 0.0, s)
            out_logits = logits
        else:
            tracked = {f for f in states if f != keyframe}
            memory, ptrs_plan = plan_memory(cfg, t, t < keyframe, n, keyframe, tracked)
            plan = {"memory": memory, "pointers": ptrs_plan}
            feeds = {
                "current_vision_feat": embed,
                "memory_1": np.concatenate([states[f]["mem"] for f, _ in memory], 0),
                "memory_1_tpos": np.array([r for _, r in memory], np.int64),
                "memory_0": np.stack([states[f]["ptr"] for f, _, _ in ptrs_plan], 0),
                "memory_0_pos": np.array([p for _, _, p in ptrs_plan], np.float32),
            }
            pix = sess["memory_attention"].run(None, feeds)[0]
            masks, iou, ptrs, score = decode(enc, pix, [], [])
            mt, pt = choose(masks, iou, True, cfg)
            s = float(score[0, 0])
            mem = memenc(embed, masks[0, mt], 0.0, s)
            out_logits = fill_holes(masks[0, mt], cfg["fill_hole_area"])
        states[t] = {"mem": to_bf16(mem), "ptr": ptrs[0, pt]}
        up = F.interpolate(torch.from_numpy(out_logits)[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()
        results[t] = up > cfg["mask_threshold"]
        golden[t] = {"logits": out_logits, "object_score": s, "obj_ptr": ptrs[0, pt], "mask_token": mt, "plan": plan}
    return results, golden


def official_loop(predictor, frame_dir: Path, keyframe, box, point):
    """Seg-ReSearch's post_segmentation/sam2_okvos.py prompting and propagation."""
    state = predictor.init_state(video_path=str(frame_dir))
    if box is not None:
        predictor.add_new_points_or_box(state, frame_idx=keyframe, obj_id=1, box=np.array(box, np.float32))
    if point is not None:
        predictor.add_new_points_or_box(state, frame_idx=keyframe, obj_id=1, points=np.array([point], np.float32), labels=np.array([1], np.int32))
    masks = {}
    for reverse in (False, True):
        for t, _, logits in predictor.propagate_in_video(state, start_frame_idx=keyframe, reverse=reverse):
            masks[t] = (logits[0, 0] > 0.0).cpu().numpy()
    return masks


def verify(predictor, out: Path, clip: Path, keyframe: int, box, point):
    from PIL import Image

    frames = sorted(p for p in clip.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    if not frames:
        sys.exit(f"--verify {clip}: no JPEG frames (SAM2VideoPredictor reads a folder of .jpg frames)")
    size = Image.open(frames[0]).size
    with torch.inference_mode(), torch.autocast(predictor.device.type, dtype=torch.bfloat16, enabled=predictor.device.type == "cuda"):
        official = official_loop(predictor, clip, keyframe, box, point)
    ours, golden = onnx_loop(out, frames, keyframe, box, point, size)
    ious = []
    for t in range(len(frames)):
        a, b = official[t], ours[t]
        union = np.logical_or(a, b).sum()
        iou = 1.0 if union == 0 else np.logical_and(a, b).sum() / union
        ious.append(iou)
        print(f"frame {t:4d}  IoU {iou:.4f}")
    print(f"mean IoU {np.mean(ious):.4f}, worst {np.min(ious):.4f} (target >= 0.99)")
    gdir = out / "golden"
    gdir.mkdir(exist_ok=True)
    for t in sorted({keyframe, keyframe - 1, keyframe + 1, keyframe - 7, keyframe + 7}):
        if 0 <= t < len(frames):
            g = golden[t]
            np.savez(gdir / f"frame-{t:05d}.npz", logits=g["logits"], object_score=g["object_score"], obj_ptr=g["obj_ptr"],
                     mask_token=g["mask_token"], official_mask=official[t], onnx_mask=ours[t],
                     plan=json.dumps(g["plan"]), frame=str(frames[t].name))
    (out / "golden" / "verify.json").write_text(json.dumps({"keyframe": keyframe, "box": box, "point": point, "iou": ious}))
    print(f"golden tensors in {gdir}")
    return min(ious)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="sam2.1_hiera_large.pt (or any SAM2/SAM2.1 size)")
    ap.add_argument("--model-cfg", required=True, help="configs/sam2.1/sam2.1_hiera_l.yaml (the sam2 package's config name)")
    ap.add_argument("--out", required=True, type=Path, help="folder for the ONNX files and sam2_config.json")
    ap.add_argument("--model-id", default=None, help="name recorded in sam2_config.json (default: checkpoint file stem)")
    ap.add_argument("--image-decoder", action="store_true", help="also write decoder.onnx (samexporter contract)")
    ap.add_argument("--skip-export", action="store_true", help="only run --verify on an existing export")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--verify", type=Path, help="folder of JPEG frames: compare with the official video predictor")
    ap.add_argument("--keyframe", type=int, default=0)
    ap.add_argument("--box", help="x1,y1,x2,y2 in pixels of the first frame")
    ap.add_argument("--point", help="x,y in pixels of the first frame")
    args = ap.parse_args(argv)
    predictor = build(args.checkpoint, args.model_cfg, args.device)
    if not args.skip_export:
        export_all(predictor, args.out, args.image_decoder, args.model_id or Path(args.checkpoint).stem, args.device)
    if args.verify:
        box = [float(v) for v in args.box.split(",")] if args.box else None
        point = [float(v) for v in args.point.split(",")] if args.point else None
        if box is None and point is None:
            sys.exit("--verify needs --box and/or --point")
        worst = verify(predictor, args.out, args.verify, args.keyframe, box, point)
        return 0 if worst >= 0.99 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
