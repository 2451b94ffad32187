"""pix2pix baseline (Isola et al. 2017): U-Net generator + PatchGAN on (sketch, image), GAN + 100·L1.

Trained on the same data and batches as SketchyGAN and evaluated the same way (training/evaluate.py). Like the
original it sees neither the class nor noise. Decoder uses upsample+conv (no checkerboard artefacts) and instance
norm (no batch statistics at inference).
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from training import checkpoint as ckpt
from training.config import Pix2PixConfig, to_dict
from training.data import PairedData
from training.edges import HumanStrokes
from training.pix2pix_nets import ClassFree, PatchGAN, UNet
from training.reporting import sample_grid
from training.sampler import BatchSampler
from training.tensors import to_tensors


def train_pix2pix(cfg: Pix2PixConfig, data: PairedData, out: Path, data_spec: str = "default",
                  progress: bool = True) -> Path:
    """Train and write `<out>/generator.safetensors` (kind 'pix2pix'); returns its path."""
    cfg = Pix2PixConfig(**{**to_dict(cfg), "resolution": data.resolution})
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    g, d = UNet(cfg), PatchGAN(cfg.width)
    opt_g = torch.optim.Adam(g.parameters(), cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), cfg.lr, betas=(0.5, 0.999))
    sampler = BatchSampler(data, cfg.batch_size, seed=cfg.seed * 7919,
                           strokes=HumanStrokes() if cfg.human_strokes else None)
    t0 = time.perf_counter()
    for step in tqdm(range(cfg.steps), disable=not progress, desc="pix2pix"):
        sketch, real, _ = to_tensors(sampler.batch(step, cfg.steps))
        fake = g(sketch)
        pr, pf = d(sketch, real), d(sketch, fake.detach())
        loss_d = 0.5 * (F.binary_cross_entropy_with_logits(pr, torch.ones_like(pr)) +
                        F.binary_cross_entropy_with_logits(pf, torch.zeros_like(pf)))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        pf = d(sketch, fake)
        loss_g = F.binary_cross_entropy_with_logits(pf, torch.ones_like(pf)) + cfg.w_l1 * (fake - real).abs().mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    g.eval()
    meta = {"kind": "pix2pix", "pix2pix": to_dict(cfg), "class_names": data.class_names, "step": cfg.steps,
            "data": data_spec, "data_fingerprint": data.fingerprint(), "train_seconds": time.perf_counter() - t0}
    path = Path(out) / "generator.safetensors"
    ckpt.save(path, {f"pix2pix.{k}": v for k, v in g.state_dict().items()}, meta)
    sample_grid(ClassFree(g), data, Path(out) / "samples" / f"step_{cfg.steps:06d}.png", seeds=1)
    return path


def load_pix2pix(path: Path) -> tuple[nn.Module, dict]:
    tensors, meta = ckpt.load(path)
    if meta.get("kind") != "pix2pix":
        raise ckpt.CheckpointError(f"{path} is not a pix2pix checkpoint (kind {meta.get('kind')!r})")
    g = UNet(Pix2PixConfig(**meta["pix2pix"]))
    ckpt.load_state(g, tensors, "pix2pix", path)
    return ClassFree(g.eval()), meta
