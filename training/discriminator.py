"""SketchyGAN discriminator (`critic_multiple_proj`, models_mru.py:265-374).

Spectral norm on every weight, no normalisation, scalar PReLU, MRU blocks fed the image under test at every
scale (not the sketch), a patch of real/fake logits and an auxiliary classifier head on pooled features.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from training.config import ModelConfig
from training.mru import MRUEncoderBlock, MRUPaperBlock, conv
from training.sketch_transform import pyramid


class Discriminator(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        s = cfg.width
        widths = [8, 2 * s, 4 * s, 8 * s, 12 * s]
        self.h0 = conv(3, 8, 7, sn=True)
        self.a0 = nn.PReLU(1, init=0.2)
        blocks = []
        for i in range(4):
            last = i == 3
            if cfg.mru_variant == "paper":
                blocks.append(MRUPaperBlock(widths[i], 3, widths[i + 1], num_classes=None, act="prelu", sn=True,
                                            resample="down", last_unit=last, eps=cfg.minmax_eps))
            else:
                blocks.append(MRUEncoderBlock(widths[i], 3, widths[i + 1], num_classes=None, act="prelu", sn=True,
                                              last_unit=last, eps=cfg.minmax_eps))
        self.blocks = nn.ModuleList(blocks)
        self.adv = conv(12 * s, 1, 1, sn=True)
        self.cls = spectral_norm(nn.Linear(12 * s, cfg.num_classes))

    def forward(self, img: torch.Tensor, return_features: bool = False):
        """img [B,3,S,S] in [-1,1] -> (patch logits [B,1,S/16,S/16], class logits [B,C][, block features])."""
        ims = pyramid(img, 5)
        h = self.a0(self.h0(img))
        feats = []
        for block, im in zip(self.blocks, ims):
            h = block(h, im)
            feats.append(h)
        logits = self.adv(h)
        cls = self.cls(h.mean(dim=(2, 3)))
        if return_features:
            return logits, cls, feats
        return logits, cls
