"""SketchyGAN generator (`generator_skip`, models_mru.py:150-261): MRU encoder-decoder with the sketch at every scale.

Inputs are kept explicit so export can wrap them: sketch [B,1,S,S] in [0,1] (white paper = 1), class ids [B]
(int64), noise [B,Z] (deviation: the reference samples z inside G; here it is an input so a seed reproduces an
image). Output [B,3,S,S] in [-1,1].
"""
from __future__ import annotations

import torch
from torch import nn

from training.config import ModelConfig
from training.mru import MRUDecoderBlock, MRUEncoderBlock, MRUPaperBlock, conv
from training.norms import CondBatchNorm, MiuReLU
from training.sketch_transform import SKETCH_CHANNELS, SketchTransform, pyramid


class Generator(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        s, n, k = cfg.width, cfg.num_classes, SKETCH_CHANNELS
        self.sketch = SketchTransform(cfg.distance_steps)
        self.h0 = conv(k, 8, 7, stride=2)  # 7x7 stride 2, linear, no norm (models_mru.py:93-97)
        paper = cfg.mru_variant == "paper"

        def enc(c_h: int, d: int, last: bool = False) -> nn.Module:
            if paper:
                return MRUPaperBlock(c_h, k, d, num_classes=n, act="miu", resample="down", last_unit=last,
                                     eps=cfg.minmax_eps)
            return MRUEncoderBlock(c_h, k, d, num_classes=n, act="miu", sn=False, last_unit=last, eps=cfg.minmax_eps)

        def dec(c_h: int, c_in: int, d: int) -> nn.Module:
            if paper:
                return MRUPaperBlock(c_h, c_in, d, num_classes=n, act="miu", resample="up", eps=cfg.minmax_eps)
            return MRUDecoderBlock(c_h, c_in, d, num_classes=n, eps=cfg.minmax_eps)

        self.enc = nn.ModuleList([enc(8, s), enc(s, 2 * s), enc(2 * s, 4 * s), enc(4 * s, 8 * s, last=True)])
        side = cfg.resolution // 16  # noise map is twice the bottleneck side (models_mru.py:188-194)
        self.noise_shape = (s, side, side)
        self.noise_fc = nn.Linear(cfg.noise_dim, s * side * side)
        nn.init.normal_(self.noise_fc.weight, 0.0, 0.02)
        nn.init.zeros_(self.noise_fc.bias)
        self.noise_norm = CondBatchNorm(s * side * side, n, dims=1)
        self.noise_act = MiuReLU()
        self.dec = nn.ModuleList([
            dec(8 * s, k + s, 6 * s),      # 4x4 at 64px: sketch + noise (encoder skip E3 unused, as in the reference)
            dec(6 * s, k + 2 * s, 4 * s),  # sketch + E2
            dec(4 * s, k + s, 2 * s),      # sketch + E1
            dec(2 * s, k + 8, 2 * s),      # sketch + h0
            dec(2 * s, k, s),              # sketch only
        ])
        self.out = conv(s, 3, 7)

    def forward(self, sketch: torch.Tensor, y: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        sk = pyramid(self.sketch(sketch), 6)  # resolutions R, R/2, ..., R/32
        h0 = self.h0(sk[0])
        e1 = self.enc[0](h0, sk[1], y)
        e2 = self.enc[1](e1, sk[2], y)
        e3 = self.enc[2](e2, sk[3], y)
        e4 = self.enc[3](e3, sk[4], y)
        z = self.noise_act(self.noise_norm(self.noise_fc(noise), y)).view(-1, *self.noise_shape)
        h = self.dec[0](e4, torch.cat([sk[4], z], 1), y)
        h = self.dec[1](h, torch.cat([sk[3], e2], 1), y)
        h = self.dec[2](h, torch.cat([sk[2], e1], 1), y)
        h = self.dec[3](h, torch.cat([sk[1], h0], 1), y)
        h = self.dec[4](h, sk[0], y)
        return torch.tanh(self.out(h))
