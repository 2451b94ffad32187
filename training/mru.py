"""Masked Residual Units (MRU), as the official SketchyGAN code uses them.

- `MRUEncoderBlock`: `mru_conv_block_v3` (mru.py:353-461), pre-activation residual block with an image-injection
  gate; used by the generator's encoder and (with spectral norm, no norm, PReLU) by the discriminator.
- `MRUDecoderBlock`: `mru_deconv_block_v2` (mru.py:527-591), two MinMax(LReLU) gates, upsamples first.
- `MRUPaperBlock`: the paper's sigmoid-gate formulation (mru.py:224-282 / 465-523), an option for ablations.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from training.norms import CondBatchNorm, MiuReLU, lrelu, minmax


def conv(cin: int, cout: int, k: int, *, stride: int = 1, sn: bool = False, bias: bool = True,
         bias_init: float = 0.0) -> nn.Module:
    """Conv with 'same' padding and the reference's N(0, 0.02) init; optionally spectrally normalised."""
    c = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=bias)
    nn.init.normal_(c.weight, 0.0, 0.02)
    if bias:
        nn.init.constant_(c.bias, bias_init)
    return spectral_norm(c) if sn else c


class Norm(nn.Module):
    """Class-conditional BN in the generator, nothing in the discriminator; always called as norm(x, y)."""

    def __init__(self, channels: int, num_classes: int | None) -> None:
        super().__init__()
        self.cbn = CondBatchNorm(channels, num_classes) if num_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return x if self.cbn is None else self.cbn(x, y)


def make_act(kind: str) -> nn.Module:
    """'miu' (generator's smooth ReLU) or 'prelu' (discriminator: one scalar slope per call site, init 0.2)."""
    if kind == "miu":
        return MiuReLU()
    if kind == "prelu":
        return nn.PReLU(1, init=0.2)
    raise ValueError(f"unknown activation {kind!r}; expected 'miu' or 'prelu'")


class MRUEncoderBlock(nn.Module):
    """mru_conv_block_v3: y = P(h) + conv(act(N(conv(act(N(h + g*conv(I))))))), then 2x2 mean-pool."""

    def __init__(self, c_h: int, c_img: int, d: int, *, num_classes: int | None, act: str, sn: bool,
                 last_unit: bool = False, downsample: bool = True, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps, self.downsample = eps, downsample
        self.n_in, self.a_in = Norm(c_h, num_classes), make_act(act)
        self.gate = conv(c_h + c_img, c_h, 3, sn=sn, bias_init=0.5)  # update-gate bias 0.5 (mru.py:359)
        self.img = conv(c_img, c_h, 3, sn=sn)
        self.n1, self.a1 = Norm(c_h, num_classes), make_act(act)
        self.conv1 = conv(c_h, d, 3, sn=sn)
        self.n2, self.a2 = Norm(d, num_classes), make_act(act)
        self.conv2 = conv(d, d, 3, sn=sn)
        self.proj = conv(c_h, d, 1, sn=sn) if c_h != d else None
        self.last_unit = last_unit
        if last_unit:
            self.n_last, self.a_last = Norm(d, num_classes), make_act(act)

    def forward(self, h: torch.Tensor, img: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        a = self.a_in(self.n_in(h, y))
        g = minmax(lrelu(self.gate(torch.cat([a, img], 1))), self.eps)
        h_plus = h + g * self.img(img)
        t = self.a2(self.n2(self.conv1(self.a1(self.n1(h_plus, y))), y))
        out = (h if self.proj is None else self.proj(h)) + self.conv2(t)
        if self.downsample:
            out = F.avg_pool2d(out, 2)
        if self.last_unit:
            out = self.a_last(self.n_last(out, y))
        return out


class MRUDecoderBlock(nn.Module):
    """mru_deconv_block_v2: upsample h, gates r (mask on h) and z (output gate), y = (1-z) P(h) + z t."""

    def __init__(self, c_h: int, c_in: int, d: int, *, num_classes: int | None, act: str = "miu",
                 eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.gate_r = conv(c_h + c_in, c_h, 3)
        self.gate_z = conv(c_h + c_in, d, 3)
        self.conv1 = conv(c_h + c_in, d, 3)
        self.n1, self.a1 = Norm(d, num_classes), make_act(act)
        self.conv2 = conv(d, d, 3)
        self.n2, self.a2 = Norm(d, num_classes), make_act(act)
        if c_h != d:
            self.proj = conv(c_h, d, 1)
            self.np, self.ap = Norm(d, num_classes), make_act(act)
        else:
            self.proj = None

    def forward(self, h: torch.Tensor, img: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        c = torch.cat([h, img], 1)
        r = minmax(lrelu(self.gate_r(c)), self.eps)
        z = minmax(lrelu(self.gate_z(c)), self.eps)
        t = self.a1(self.n1(self.conv1(torch.cat([r * h, img], 1)), y))
        t = self.a2(self.n2(self.conv2(t), y))
        p = h if self.proj is None else self.ap(self.np(self.proj(h), y))
        return (1.0 - z) * p + z * t


class MRUPaperBlock(nn.Module):
    """The paper's MRU with sigmoid gates: y = (1-n) P(x) + n z, z from the masked input; resample 'down'/'up'."""

    def __init__(self, c_h: int, c_in: int, d: int, *, num_classes: int | None, act: str, sn: bool = False,
                 resample: str = "down", last_unit: bool = False, eps: float = 1e-5) -> None:
        super().__init__()
        if resample not in ("down", "up"):
            raise ValueError(f"resample must be 'down' or 'up', got {resample!r}")
        self.resample = resample
        self.gate_m = conv(c_h + c_in, c_h, 3, sn=sn)
        self.gate_n = conv(c_h + c_in, d, 3, sn=sn, bias_init=0.5)
        self.conv1 = conv(c_h + c_in, d, 3, sn=sn)
        self.n1, self.a1 = Norm(d, num_classes), make_act(act)
        self.conv2 = conv(d, d, 3, sn=sn)
        self.n2, self.a2 = Norm(d, num_classes), make_act(act)
        self.proj = conv(c_h, d, 1, sn=sn) if c_h != d else None
        self.last_unit = last_unit
        if last_unit:
            self.n_last, self.a_last = Norm(d, num_classes), make_act(act)

    def forward(self, h: torch.Tensor, img: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.resample == "up":
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        c = torch.cat([h, img], 1)
        m = torch.sigmoid(self.gate_m(c))
        n = torch.sigmoid(self.gate_n(c))
        z = self.a1(self.n1(self.conv1(torch.cat([m * h, img], 1)), y))
        z = self.a2(self.n2(self.conv2(z), y))
        out = (1.0 - n) * (h if self.proj is None else self.proj(h)) + n * z
        if self.resample == "down":
            out = F.avg_pool2d(out, 2)
        if self.last_unit:
            out = self.a_last(self.n_last(out, y))
        return out
