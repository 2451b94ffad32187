"""What the optimisers update and how the saved generator follows: the reference's weight-decay groups and the
exponential moving average of the generator's weights (its batch-norm statistics are re-estimated at save time:
train.py's `recalibrate_bn`)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


def param_groups(model: nn.Module, wd_conv: float, wd_fc: float) -> list[dict[str, Any]]:
    """The reference's L2 regularisation: conv weights 1e-5, FC weights 1e-6, nothing else (mru.py:600, :55)."""
    conv_w, fc_w, rest = [], [], []
    for name, p in model.named_parameters():
        if p.ndim == 4 and "weight" in name:
            conv_w.append(p)
        elif p.ndim == 2 and "weight" in name and "gamma" not in name and "beta" not in name:
            fc_w.append(p)
        else:
            rest.append(p)
    return [{"params": conv_w, "weight_decay": wd_conv}, {"params": fc_w, "weight_decay": wd_fc},
            {"params": rest, "weight_decay": 0.0}]


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """`ema` <- decay * ema + (1 - decay) * model for the weights; buffers (batch-norm statistics) copied."""
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm, 1.0 - decay)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)
