"""pix2pix baseline networks (Isola et al. 2017): U-Net generator and PatchGAN discriminator on (sketch, image).
The training loop and checkpoint loading are in training/pix2pix.py."""
from __future__ import annotations

import torch
from torch import nn

from training.config import Pix2PixConfig


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


class ClassFree(nn.Module):
    """Adapter giving the U-Net the generator's (sketch, class, noise) call signature."""

    def __init__(self, unet: UNet) -> None:
        super().__init__()
        self.unet = unet
        self.cfg = type("Cfg", (), {"noise_dim": 1})()

    def forward(self, sketch: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.unet(sketch)
