"""Data batches as model tensors: the one conversion the trainers, evaluation and benchmarks share."""
from __future__ import annotations

import torch

from training.sampler import Batch


def to_tensors(batch: Batch, channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 numpy batch -> sketch [B,1,S,S] in [0,1], photo [B,3,S,S] in [-1,1], labels [B]."""
    sketch = torch.from_numpy(batch.sketch).float().unsqueeze(1) / 255.0
    photo = torch.from_numpy(batch.photo).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if channels_last:
        sketch, photo = sketch.contiguous(memory_format=torch.channels_last), photo.contiguous(
            memory_format=torch.channels_last)
    return sketch, photo, torch.from_numpy(batch.label)
