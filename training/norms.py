"""Normalisation and activations used by the SketchyGAN blocks."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MiuReLU(nn.Module):
    """Smooth ReLU of the official generator: (x + sqrt((1-mu)^2 + x^2)) / 2 (models_mru.py:63-65)."""

    def __init__(self, mu: float = 0.7) -> None:
        super().__init__()
        self.c = (1.0 - mu) ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x + torch.sqrt(self.c + x * x))


class CondBatchNorm(nn.Module):
    """Class-conditional batch norm: shared normalisation, per-class gain and bias.

    Deviation from the official code: at inference it uses running statistics (train mode still uses batch
    statistics), so one request's output never depends on what else is in its batch.
    """

    def __init__(self, channels: int, num_classes: int, dims: int = 2) -> None:
        super().__init__()
        bn = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
        self.bn = bn(channels, affine=False, eps=1e-5, momentum=0.1)
        self.gamma = nn.Embedding(num_classes, channels)
        self.beta = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)
        self.dims = dims

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.bn(x)
        g, b = self.gamma(y), self.beta(y)
        if self.dims == 2:
            g, b = g[:, :, None, None], b[:, :, None, None]
        return g * h + b


def minmax(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Per-sample, per-channel min-max scaling over H, W (the reference's gate normaliser), with an epsilon."""
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    return (x - lo) / (hi - lo + eps)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU with slope 0.2 as used inside the gates (mru.py:10-12)."""
    return F.leaky_relu(x, 0.2)
