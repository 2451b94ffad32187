"""Sketch pre-processing that lives inside the model, so the exported graph carries the identical function.

The official code feeds a Euclidean distance transform of the binarised sketch (input_pipeline.py:124-137).
An EDT does not export to ONNX/TensorRT, so we use a truncated chessboard distance built from iterated 3x3
max-pooling (deviation, docs/model.md): strokes are 0, paper far from any stroke saturates at `steps` pixels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SKETCH_CHANNELS = 2  # binarised ink, truncated distance map


class SketchTransform(nn.Module):
    """[B,1,S,S] sketch in [0,1] (white paper = 1) -> [B,2,S,S] in [-1,1]: binarised ink and distance map."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"distance steps must be >= 1, got {steps}")
        self.steps = steps

    def forward(self, sketch: torch.Tensor) -> torch.Tensor:
        ink = (sketch < 0.5).to(sketch.dtype)
        covered = ink
        total = ink
        for _ in range(self.steps - 1):
            covered = F.max_pool2d(covered, 3, stride=1, padding=1)
            total = total + covered
        # a pixel at chessboard distance d < steps from ink is covered for steps - d iterations
        dist = (self.steps - total) / self.steps
        return torch.cat([1.0 - 2.0 * ink, 2.0 * dist - 1.0], 1)


def pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """[x, x/2, x/4, ...] by 2x2 mean-pooling (the reference's mean_pool / AREA resize), `levels` entries."""
    out = [x]
    for _ in range(levels - 1):
        out.append(F.avg_pool2d(out[-1], 2))
    return out
