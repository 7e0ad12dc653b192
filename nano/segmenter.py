"""A tiny segmenter with the pinned SAM2 ONNX contract ("sam2-onnx v1",
../shared/spec/sam2-onnx-contract.md §3 and activities/segment/contract.ts), trained from scratch on
the nano world and exported with torch.onnx.export to the exact tensor names, dtypes and ranks of
encoder.onnx, decoder.onnx, video_decoder.onnx, memory_attention.onnx and memory_encoder.onnx, plus
sam2_config.json. The segment activities (activities/segment/) run it unchanged.

The model is not SAM2, only its interface:
- encoder: the 1024² frame is average-pooled to 128², two small convolutions give a 64² feature
  map; `image_embed` [256,64,64] is its projection plus `no_mem_embed`, the two high-res levels
  are projections upsampled to 128² and 256².
- decoder / video_decoder: prompt points (box corners 2/3, clicks 1/0, pads -1, in 1024-frame
  pixels) and the low-res `mask_input` are rasterised into maps at 64², concatenated with the
  features and `image_embed`, and a dilated convolution stack gives 4 mask tokens (upsampled to
  256²); IoU predictions and object pointers are pooled from the same features; the object score is
  the largest token-0 logit, and gating follows SAM2 (masks -1024 and `no_obj_ptr` when ≤ 0).
- memory_encoder: the chosen low-res mask (binarised on prompted frames) at 64² times projected
  features, plus the mask itself as the last of 64 channels; zero when the object is absent.
- memory_attention: cosine similarity of the current features with each memory frame's masked
  prototype, and the memory masks as a location prior, weighted by a learned per-tpos-row weight;
  object pointers (weighted by their signed offsets) add a bias. The result is added to
  `current_vision_feat`, so the decoder finds the object without a prompt on tracked frames.

Usage: python -m nano.segmenter --data .nano/data --out .nano/models/sam2 --seed 0 [--steps 260]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

HID, MEM, FEAT, LOW = 256, 64, 64, 256
D = 16  # decoder width
C = 24  # feature channels actually used inside the 256 of image_embed
MAPS = 4  # memory maps written into image_embed channels C..C+MAPS by memory attention
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
NO_OBJ = -1024.0


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 12, 3, padding=1)
        self.c2 = nn.Conv2d(12, C, 3, stride=2, padding=1)
        self.c3 = nn.Conv2d(C, C, 3, padding=1)
        self.hr0 = nn.Conv2d(C, 32, 1)
        self.hr1 = nn.Conv2d(C, 64, 1)
        self.no_mem_embed = nn.Parameter(torch.zeros(HID))

    def body(self, x128: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training path: the 64² features and image_embed (the high-res levels are views of f)."""
        f = F.relu(self.c1(x128))
        f = F.relu(self.c2(f))
        f = F.relu(self.c3(f)) + f
        # image_embed: the features in the first C channels, room for the memory maps after them
        emb = F.pad(f, (0, 0, 0, 0, 0, HID - C))
        return f, emb + self.no_mem_embed.view(1, HID, 1, 1)

    def forward(self, image: torch.Tensor):  # [1,3,1024,1024] normalised
        f, emb = self.body(F.avg_pool2d(image, 8))
        hr0 = F.interpolate(self.hr0(f), size=(256, 256), mode="nearest")
        hr1 = F.interpolate(self.hr1(f), size=(128, 128), mode="nearest")
        return hr0, hr1, emb


def _grid(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    c = (torch.arange(n, dtype=torch.float32) + 0.5) * (1024.0 / n)
    return c.view(1, 1, n), c.view(1, n, 1)  # gx [1,1,n], gy [1,n,1]


class Decoder(nn.Module):
    """Shared by decoder.onnx (tokens 1..3) and video_decoder.onnx (all 4 tokens)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Conv2d(C + MAPS + 32 + 64 + 4, D, 1)
        self.b1 = nn.Conv2d(D, D, 3, padding=1)
        self.b2 = nn.Conv2d(D, D, 3, padding=2, dilation=2)
        self.b3 = nn.Conv2d(D, D, 3, padding=4, dilation=4)
        self.out = nn.Conv2d(D, 4, 1)
        self.iou = nn.Linear(D + 4, 4)
        self.ptr = nn.Linear(D, 4 * HID)
        self.no_obj_ptr = nn.Parameter(torch.zeros(HID))

    def prompt_maps(self, coords, labels, mask_input, has_mask):
        gx, gy = _grid(FEAT)
        gx, gy = gx.unsqueeze(1), gy.unsqueeze(1)  # [1,1,1,n], [1,1,n,1]
        w2 = (labels == 2).float()
        w3 = (labels == 3).float()
        n2 = w2.sum(1, keepdim=True)
        tl = (w2.unsqueeze(-1) * coords).sum(1) / n2.clamp(min=1.0)  # [B,2]
        br = (w3.unsqueeze(-1) * coords).sum(1) / (w3.sum(1, keepdim=True)).clamp(min=1.0)
        has_box = (n2 > 0).float().view(-1, 1, 1, 1)
        s = 6.0
        bx = torch.sigmoid((gx - tl[:, 0].view(-1, 1, 1, 1)) / s) * torch.sigmoid((br[:, 0].view(-1, 1, 1, 1) - gx) / s)
        by = torch.sigmoid((gy - tl[:, 1].view(-1, 1, 1, 1)) / s) * torch.sigmoid((br[:, 1].view(-1, 1, 1, 1) - gy) / s)
        box = bx * by * has_box  # [B,1,n,n]
        px = coords[..., 0].unsqueeze(-1).unsqueeze(-1)  # [B,P,1,1]
        py = coords[..., 1].unsqueeze(-1).unsqueeze(-1)
        d2 = (gx.squeeze(1) - px) ** 2 + (gy.squeeze(1) - py) ** 2  # [B,P,n,n]
        bump = torch.exp(-d2 / (2 * 40.0**2))
        pos = (bump * (labels == 1).float().view(labels.shape[0], -1, 1, 1)).amax(1, keepdim=True)
        neg = (bump * (labels == 0).float().view(labels.shape[0], -1, 1, 1)).amax(1, keepdim=True)
        m = F.adaptive_avg_pool2d(mask_input, FEAT) / 32.0 * has_mask.view(-1, 1, 1, 1)
        return torch.cat([box, pos, neg, m], 1)

    def forward(self, image_embed, hr0, hr1, coords, labels, mask_input, has_mask, gate: bool = True):
        # the graphs get the 256²/128² levels; training passes them at 64² (same values, pooled)
        hr0 = F.adaptive_avg_pool2d(hr0, FEAT) if hr0.shape[-1] != FEAT else hr0
        hr1 = F.adaptive_avg_pool2d(hr1, FEAT) if hr1.shape[-1] != FEAT else hr1
        x = torch.cat([image_embed[:, : C + MAPS], hr0, hr1, self.prompt_maps(coords, labels, mask_input, has_mask)], 1)
        h = F.relu(self.inp(x))
        h = F.relu(self.b1(h)) + h
        h = F.relu(self.b2(h)) + h
        h = F.relu(self.b3(h)) + h
        lo = self.out(h)  # [B,4,64,64]
        masks = F.interpolate(lo, size=(LOW, LOW), mode="bilinear", align_corners=False).clamp(-32.0, 32.0)
        prob = torch.sigmoid(lo)
        pooled = torch.cat([h.mean((2, 3)), prob.mean((2, 3))], 1)
        iou = torch.sigmoid(self.iou(pooled))
        w = prob[:, 0:1]
        obj = (h * w).sum((2, 3)) / (w.sum((2, 3)) + 1.0)
        ptrs = self.ptr(obj).view(-1, 4, HID)
        score = masks[:, 0].amax((1, 2)).unsqueeze(1)  # [B,1]
        present = (score > 0).float()
        if not gate:
            return masks, iou, ptrs, score, lo
        masks = masks * present.view(-1, 1, 1, 1) + NO_OBJ * (1 - present.view(-1, 1, 1, 1))
        ptrs = ptrs * present.view(-1, 1, 1) + self.no_obj_ptr.view(1, 1, HID) * (1 - present.view(-1, 1, 1))
        return masks, iou, ptrs, score, lo


class MemoryEncoder(nn.Module):
    def __init__(self, no_mem_embed: nn.Parameter) -> None:
        super().__init__()
        self.proj = nn.Conv2d(C, MEM - 1, 1)
        self.no_mem_embed = no_mem_embed

    def forward(self, feat, mask_logits, binarize, score):
        m = F.adaptive_avg_pool2d(mask_logits, FEAT)
        b = binarize.view(-1, 1, 1, 1)
        prob = b * (m > 0).float() + (1 - b) * torch.sigmoid(m)
        v = self.proj((feat - self.no_mem_embed.view(1, HID, 1, 1))[:, :C])
        present = (score > 0).float().view(-1, 1, 1, 1)
        return torch.cat([v * prob, prob], 1) * present


class MemoryAttention(nn.Module):
    def __init__(self, no_mem_embed: nn.Parameter, mem_proj: nn.Conv2d) -> None:
        super().__init__()
        self.no_mem_embed = no_mem_embed
        self.mem_proj = mem_proj  # shared with the memory encoder: same space for the similarity
        self.tpos_w = nn.Parameter(torch.zeros(7))
        self.ptr_scale = nn.Parameter(torch.ones(1))
        self.ptr_proj = nn.Linear(HID, MAPS)
        self.mix = nn.Conv2d(4, MAPS, 1)

    def forward(self, feat, memory, tpos, ptrs, ptr_pos):
        """feat [B,256,64,64], memory [B,F,64,64,64], tpos [B,F] int64, ptrs [B,P,256], ptr_pos [B,P]."""
        raw = feat - self.no_mem_embed.view(1, HID, 1, 1)
        q = F.normalize(self.mem_proj(raw[:, :C]), dim=1)  # [B,63,n,n]
        v, msk = memory[:, :, : MEM - 1], memory[:, :, MEM - 1 :]
        proto = v.sum((3, 4)) / (msk.sum((3, 4)) + 1.0)  # [B,F,63]
        proto = F.normalize(proto, dim=2)
        sim = torch.einsum("bchw,bfc->bfhw", q, proto)  # [B,F,n,n]
        w = torch.softmax(self.tpos_w[tpos], dim=1).unsqueeze(-1).unsqueeze(-1)  # [B,F,1,1]
        sim = (sim * w).sum(1, keepdim=True)
        prior = (msk.squeeze(2) * w).sum(1, keepdim=True)
        near = F.max_pool2d(prior, 9, stride=1, padding=4)
        pw = torch.softmax(-self.ptr_scale * ptr_pos.abs(), dim=1).unsqueeze(-1)  # [B,P,1]
        ptr = self.ptr_proj((ptrs * pw).sum(1))  # [B,256]
        maps = torch.cat([sim, prior, near, sim * near], 1)
        out = self.mix(maps) + 0.1 * ptr.view(-1, MAPS, 1, 1)
        return feat + F.pad(out, (0, 0, 0, 0, C, HID - C - MAPS))


class NanoSam(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.memory_encoder = MemoryEncoder(self.encoder.no_mem_embed)
        self.memory_attention = MemoryAttention(self.encoder.no_mem_embed, self.memory_encoder.proj)


# ---------------------------------------------------------------- data

def load_split(data: str, split: str, limit: int | None = None):
    meta = json.load(open(os.path.join(data, "meta.json")))
    samples = meta["splits"][split][:limit] if limit else meta["splits"][split]
    frames, masks = [], []
    for s in samples:
        vdir = os.path.join(data, split, "JPEGImages", s["video"])
        names = sorted(os.listdir(vdir))
        frames.append(np.stack([np.asarray(Image.open(os.path.join(vdir, n)).convert("RGB")) for n in names]))
        objm = []
        for o in s["objects"]:
            adir = os.path.join(data, split, "Annotations", s["video"], o["oid"])
            objm.append(np.stack([np.asarray(Image.open(os.path.join(adir, n.replace(".jpg", ".png")))) > 127 for n in names]))
        masks.append(np.stack(objm))  # [O,T,H,W]
    return frames, masks


def to128(frames_u8: np.ndarray) -> torch.Tensor:
    """uint8 [B,H,W,3] -> normalised [B,3,128,128]: an antialiased resize, close to what the encoder
    sees (the 1024² frame average-pooled 8×) at a fraction of the cost."""
    x = torch.from_numpy(frames_u8).permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=(128, 128), mode="bilinear", align_corners=False, antialias=True)
    return (x - MEAN) / STD


def mask_target(m: np.ndarray, size: int = FEAT) -> torch.Tensor:
    """Soft (area-averaged) target at the decoder's 64² logit grid."""
    t = torch.from_numpy(m.astype(np.float32)).unsqueeze(1)
    return F.interpolate(t, size=(size, size), mode="area")


def box_prompt(m: np.ndarray, rng: random.Random, jitter: float) -> tuple[list[float], list[float]]:
    """Box corners + one positive click, in 1024-frame pixels, jittered like an imperfect policy."""
    h, w = m.shape
    ys, xs = np.nonzero(m)
    x1, y1, x2, y2 = xs.min(), ys.min(), xs.max(), ys.max()
    bw, bh = x2 - x1 + 1, y2 - y1 + 1
    j = lambda s: rng.uniform(-jitter, jitter) * s  # noqa: E731
    box = [x1 + j(bw), y1 + j(bh), x2 + j(bw), y2 + j(bh)]
    k = rng.randrange(len(xs))
    pt = [xs[k] + 0.5, ys[k] + 0.5]
    sx, sy = 1024.0 / w, 1024.0 / h
    return [box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy], [pt[0] * sx, pt[1] * sy]


def seg_loss(logits256: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(logits256, target)
    p = torch.sigmoid(logits256)
    dice = 1 - (2 * (p * target).sum((1, 2, 3)) + 1) / (p.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)
    return bce + dice.mean()


def iou_of(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    pred = (logits > 0).float()
    inter = (pred * target).sum((-1, -2))
    union = ((pred + target) > 0).float().sum((-1, -2))
    return inter / union.clamp(min=1)


def train(data: str, out: str, seed: int, steps: int, batch: int = 8, log=print) -> dict:
    torch.manual_seed(seed)
    rng = random.Random(seed)
    frames, masks = load_split(data, "train")
    model = NanoSam()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.15)
    t0 = time.time()
    for step in range(steps):
        # a batch of (video, object, frame a, frame b): a is prompted (image mode), b is tracked from a
        fa, fb, ta, tb, coords, labels, minp, hasm = [], [], [], [], [], [], [], []
        for _ in range(batch):
            v = rng.randrange(len(frames))
            o = rng.randrange(masks[v].shape[0])
            T = frames[v].shape[0]
            a = rng.randrange(T)
            b = min(T - 1, max(0, a + rng.choice([-3, -2, -1, 1, 2, 3])))
            if b == a:
                b = a + 1 if a + 1 < T else a - 1
            fa.append(frames[v][a]); fb.append(frames[v][b])
            ta.append(masks[v][o, a]); tb.append(masks[v][o, b])
            box, pt = box_prompt(masks[v][o, a], rng, 0.12)
            mode = rng.random()
            if mode < 0.45:  # box (labels 2,3) — the first call of the keyframe prompt
                coords.append([box[:2], box[2:], [0, 0]]); labels.append([2, 3, -1]); hasm.append(0.0)
            elif mode < 0.9:  # the refinement click with the previous mask as input
                coords.append([pt, [0, 0], [0, 0]]); labels.append([1, -1, -1]); hasm.append(1.0)
            else:  # box and click together
                coords.append([box[:2], box[2:], pt]); labels.append([2, 3, 1]); hasm.append(0.0)
            minp.append(masks[v][o, a])
        xa, xb = to128(np.stack(fa)), to128(np.stack(fb))
        tga, tgb = mask_target(np.stack(ta)), mask_target(np.stack(tb))
        # previous-call mask as logits ±8 with noise (the box call's output in the real loop)
        prev = F.interpolate(tga * 16 - 8, size=(LOW, LOW), mode="bilinear", align_corners=False)
        prev = prev + torch.randn_like(prev) * 4
        hasm_t = torch.tensor(hasm)
        c = torch.tensor(coords, dtype=torch.float32)
        lab = torch.tensor(labels, dtype=torch.float32)
        enc = model.encoder
        fa_, emba = enc.body(xa)
        fb_, embb = enc.body(xb)
        hr0a, hr1a, hr0b, hr1b = enc.hr0(fa_), enc.hr1(fa_), enc.hr0(fb_), enc.hr1(fb_)
        _, ia, pa, _, la = model.decoder(emba, hr0a, hr1a, c, lab, prev * hasm_t.view(-1, 1, 1, 1), hasm_t, gate=False)
        loss_a = seg_loss(la, tga.expand_as(la))
        # memory from frame a: mostly the ground truth (binarised), sometimes the model's own mask
        own = F.interpolate(la[:, 0:1].detach(), size=(LOW, LOW), mode="bilinear", align_corners=False)
        gt = F.interpolate(tga, size=(LOW, LOW), mode="bilinear", align_corners=False)
        mlog = torch.where(torch.rand(batch, 1, 1, 1) < 0.5, gt * 20 - 10, own)
        mem = model.memory_encoder(emba, mlog, torch.ones(batch), torch.ones(batch, 1))
        F_ = rng.choice([1, 1, 2])
        memory = mem.unsqueeze(1).repeat(1, F_, 1, 1, 1)
        tpos = torch.tensor([[rng.randrange(7) for _ in range(F_)] for _ in range(batch)])
        ptr_pos = torch.rand(batch, 1) * 2 - 1
        fused = model.memory_attention(embb, memory, tpos, pa[:, 0:1], ptr_pos)
        zc = torch.zeros(batch, 1, 2)
        zl = -torch.ones(batch, 1)
        _, ib, _, _, lb = model.decoder(fused, hr0b, hr1b, zc, zl, torch.zeros(batch, 1, LOW, LOW), torch.zeros(batch), gate=False)
        loss_b = seg_loss(lb, tgb.expand_as(lb))
        with torch.no_grad():
            iou_a = iou_of(la, (tga > 0.5).float())
            iou_b = iou_of(lb, (tgb > 0.5).float())
        loss_iou = F.mse_loss(ia, iou_a) + F.mse_loss(ib, iou_b)
        loss = loss_a + loss_b + loss_iou
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 20 == 0 or step == steps - 1:
            log(f"segmenter step {step}/{steps} loss {loss.item():.3f} iou prompted {iou_a[:, 0].mean():.3f} tracked {iou_b[:, 0].mean():.3f} ({time.time() - t0:.0f}s)")
    return {"model": model, "seconds": time.time() - t0}


# ---------------------------------------------------------------- export

class _EncoderG(nn.Module):
    def __init__(self, m: NanoSam) -> None:
        super().__init__(); self.m = m

    def forward(self, image):
        return self.m.encoder(image)


class _DecoderG(nn.Module):
    def __init__(self, m: NanoSam, video: bool) -> None:
        super().__init__(); self.m = m; self.video = video

    def forward(self, image_embed, high_res_feats_0, high_res_feats_1, point_coords, point_labels, mask_input, has_mask_input):
        masks, iou, ptrs, score, _ = self.m.decoder(image_embed, high_res_feats_0, high_res_feats_1, point_coords,
                                                    point_labels, mask_input, has_mask_input)
        if self.video:
            return masks, iou, ptrs, score
        return masks[:, 1:], iou[:, 1:]


class _MemAttG(nn.Module):
    def __init__(self, m: NanoSam) -> None:
        super().__init__(); self.m = m

    def forward(self, current_vision_feat, memory_1, memory_1_tpos, memory_0, memory_0_pos):
        return self.m.memory_attention(current_vision_feat, memory_1.unsqueeze(0), memory_1_tpos.unsqueeze(0),
                                       memory_0.unsqueeze(0), memory_0_pos.unsqueeze(0))


class _MemEncG(nn.Module):
    def __init__(self, m: NanoSam) -> None:
        super().__init__(); self.m = m

    def forward(self, current_vision_feat, mask_logits, binarize, object_score_logits):
        return self.m.memory_encoder(current_vision_feat, mask_logits, binarize, object_score_logits)


def export(model: NanoSam, out: str, seed: int, steps: int) -> None:
    os.makedirs(out, exist_ok=True)
    model.eval()
    emb = torch.randn(1, HID, FEAT, FEAT)
    hr0, hr1 = torch.randn(1, 32, 256, 256), torch.randn(1, 64, 128, 128)
    dec_in = (emb, hr0, hr1, torch.rand(1, 2, 2) * 1024, torch.tensor([[2.0, 3.0]]), torch.zeros(1, 1, LOW, LOW), torch.zeros(1))
    dec_names = ["image_embed", "high_res_feats_0", "high_res_feats_1", "point_coords", "point_labels", "mask_input", "has_mask_input"]
    dyn_dec = {"point_coords": {1: "P"}, "point_labels": {1: "P"}}
    kw = dict(opset_version=17, dynamo=False, do_constant_folding=True)
    with torch.no_grad():
        torch.onnx.export(_EncoderG(model), (torch.randn(1, 3, 1024, 1024),), os.path.join(out, "encoder.onnx"),
                          input_names=["image"], output_names=["high_res_feats_0", "high_res_feats_1", "image_embed"], **kw)
        torch.onnx.export(_DecoderG(model, False), dec_in, os.path.join(out, "decoder.onnx"), input_names=dec_names,
                          output_names=["masks", "iou_predictions"], dynamic_axes=dyn_dec, **kw)
        torch.onnx.export(_DecoderG(model, True), dec_in, os.path.join(out, "video_decoder.onnx"), input_names=dec_names,
                          output_names=["masks", "iou_predictions", "obj_ptrs", "object_score_logits"], dynamic_axes=dyn_dec, **kw)
        torch.onnx.export(_MemAttG(model), (emb, torch.randn(2, MEM, FEAT, FEAT), torch.tensor([0, 6]), torch.randn(3, HID), torch.rand(3)),
                          os.path.join(out, "memory_attention.onnx"),
                          input_names=["current_vision_feat", "memory_1", "memory_1_tpos", "memory_0", "memory_0_pos"],
                          output_names=["pix_feat_with_mem"],
                          dynamic_axes={"memory_1": {0: "F"}, "memory_1_tpos": {0: "F"}, "memory_0": {0: "P"}, "memory_0_pos": {0: "P"}}, **kw)
        torch.onnx.export(_MemEncG(model), (emb, torch.randn(1, 1, LOW, LOW), torch.ones(1), torch.ones(1, 1)),
                          os.path.join(out, "memory_encoder.onnx"),
                          input_names=["current_vision_feat", "mask_logits", "binarize", "object_score_logits"],
                          output_names=["maskmem_features"], **kw)
    config = {
        "contract": "sam2-onnx v1",
        "model_id": f"nano-sam-seed{seed}-steps{steps}",
        # the contract pins a sam2 commit; the nano model follows the same loop rules
        "sam2_commit": "2b90b9f",
        "image_size": 1024,
        "num_maskmem": 7,
        "max_obj_ptrs_in_encoder": 16,
        "fill_hole_area": 8,
        "mask_threshold": 0.0,
        "opset": 17,
    }
    with open(os.path.join(out, "sam2_config.json"), "w") as f:
        json.dump(config, f, indent=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=260)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if not os.path.isfile(os.path.join(a.data, "meta.json")):
        raise SystemExit(f"--data {a.data}: no meta.json there; run python -m nano.world --out {a.data} first")
    r = train(a.data, a.out, a.seed, a.steps)
    export(r["model"], a.out, a.seed, a.steps)
    print(json.dumps({"out": a.out, "train_seconds": round(r["seconds"], 1)}))


if __name__ == "__main__":
    main()
