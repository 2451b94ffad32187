"""The served function as one nn.Module: contract tensors in, contract tensors out, all pre/post-processing inside.

Any input value is safe here (docs/architecture.md, "Wire contract"): class ids are clamped into range and
non-finite or huge noise is sanitised in the graph, so a TensorRT engine (which cannot reject a request) never
indexes out of bounds or emits NaN. The CPU backend additionally rejects such requests with INVALID_ARGUMENT before
they reach the graph.
"""
from __future__ import annotations

import torch
from torch import nn

from training.generator import Generator
from training.upsampler import Upsampler
from triton_repo.contract import NOISE_LIMIT


class ServingGraph(nn.Module):
    """`upsampler`: a learned upsampler run on the generator's image inside the same graph (one request, one model)."""

    def __init__(self, generator: Generator, upsampler: Upsampler | None = None) -> None:
        super().__init__()
        self.g = generator.eval()
        self.up = upsampler.eval() if upsampler is not None else None
        self.num_classes = generator.cfg.num_classes

    def forward(self, sketch: torch.Tensor, class_id: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """sketch uint8 [B,S,S], class_id int32 [B,1], noise fp32 [B,Z] -> image uint8 [B,U*S,U*S,3] (U: the
        upsampler's scale, 1 without one)."""
        x = sketch.unsqueeze(1).to(torch.float32) / 255.0
        y = class_id[:, 0].clamp(0, self.num_classes - 1).to(torch.int64)
        z = torch.where(torch.isfinite(noise), noise, torch.zeros_like(noise)).clamp(-NOISE_LIMIT, NOISE_LIMIT)
        img = self.g(x, y, z)
        if self.up is not None:
            img = self.up(img)
        img = ((img + 1.0) * 127.5).round().clamp(0.0, 255.0)
        return img.permute(0, 2, 3, 1).to(torch.uint8)
