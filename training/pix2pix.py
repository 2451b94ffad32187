"""pix2pix baseline (Isola et al. 2017): U-Net generator + PatchGAN on (sketch, image), GAN + 100·L1.

Trained on the same data and batches as SketchyGAN and evaluated the same way (training/evaluate.py). Like the
original it sees neither the class nor noise. Decoder uses upsample+conv (no checkerboard artefacts) and instance
norm (no batch statistics at inference).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from training import checkpoint as ckpt
from training.config import to_dict
from training.data import BatchSampler, PairedData


@dataclass(frozen=True)
class Pix2PixConfig:
    resolution: int = 64
    width: int = 32
    steps: int = 2500
    batch_size: int = 16
    lr: float = 2e-4
    w_l1: float = 100.0
    seed: int = 0
    num_threads: int = 0


def _down(cin: int, cout: int, norm: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, 2, 1)]
    if norm:
        layers.append(nn.InstanceNorm2d(cout, affine=True))
    layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, 1, 1),
                         nn.InstanceNorm2d(cout, affine=True), nn.ReLU())


class UNet(nn.Module):
    """sketch [B,1,S,S] in [0,1] -> image [B,3,S,S] in [-1,1]; depth log2(S) - 1 (down to 2x2)."""

    def __init__(self, cfg: Pix2PixConfig) -> None:
        super().__init__()
        depth = cfg.resolution.bit_length() - 2
        w = [min(cfg.width * 2**i, cfg.width * 8) for i in range(depth)]
        self.downs = nn.ModuleList([_down(1, w[0], norm=False)] + [_down(w[i - 1], w[i]) for i in range(1, depth)])
        self.ups = nn.ModuleList([_up(w[depth - 1], w[depth - 2])] +
                                 [_up(2 * w[i], w[i - 1]) for i in range(depth - 2, 0, -1)])
        self.out = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(2 * w[0], 3, 3, 1, 1))

    def forward(self, sketch: torch.Tensor) -> torch.Tensor:
        h = sketch * 2.0 - 1.0
        skips = []
        for d in self.downs:
            h = d(h)
            skips.append(h)
        skips.pop()
        for u in self.ups:
            h = torch.cat([u(h), skips.pop()], 1)
        return torch.tanh(self.out(h))


class PatchGAN(nn.Module):
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(_down(4, width, norm=False), _down(width, 2 * width), _down(2 * width, 4 * width),
                                 nn.Conv2d(4 * width, 1, 3, 1, 1))

    def forward(self, sketch: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([sketch * 2.0 - 1.0, img], 1))


def train_pix2pix(cfg: Pix2PixConfig, data: PairedData, out: Path, data_spec: str = "default",
                  progress: bool = True) -> Path:
    """Train and write `<out>/generator.safetensors` (kind 'pix2pix'); returns its path."""
    from training.train import sample_grid, to_tensors  # shared batch conversion and sample grid
    cfg = Pix2PixConfig(**{**to_dict(cfg), "resolution": data.resolution})
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    g, d = UNet(cfg), PatchGAN(cfg.width)
    opt_g = torch.optim.Adam(g.parameters(), cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), cfg.lr, betas=(0.5, 0.999))
    sampler = BatchSampler(data, cfg.batch_size, seed=cfg.seed * 7919)
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
    sample_grid(_ClassFree(g), data, Path(out) / "samples" / f"step_{cfg.steps:06d}.png", seeds=1)
    return path


class _ClassFree(nn.Module):
    """Adapter giving the U-Net the generator's (sketch, class, noise) call signature."""

    def __init__(self, unet: UNet) -> None:
        super().__init__()
        self.unet = unet
        self.cfg = type("Cfg", (), {"noise_dim": 1})()

    def forward(self, sketch: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.unet(sketch)


def load_pix2pix(path: Path) -> tuple[nn.Module, dict]:
    tensors, meta = ckpt.load(path)
    if meta.get("kind") != "pix2pix":
        raise ckpt.CheckpointError(f"{path} is not a pix2pix checkpoint (kind {meta.get('kind')!r})")
    g = UNet(Pix2PixConfig(**meta["pix2pix"]))
    ckpt.load_state(g, tensors, "pix2pix", path)
    return _ClassFree(g.eval()), meta
