"""Frozen VGG16 feature extractor for the paper's perceptual loss, from a local weights file.

Pretrained weights cannot be downloaded here, so this is opt-in (`--perceptual-weights vgg16.safetensors`, keys
as torchvision's `features.<i>.weight/bias`). Layers conv1_2, conv2_2, conv3_2, conv4_2 after ReLU, 224 px,
ImageNet mean/std, as the reference's VGG option (graph_single.py:480-493).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from training.checkpoint import CheckpointError

CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512]  # up to conv4_2 (features index 19)
TAPS = (3, 8, 13, 20)  # ReLU after conv1_2, conv2_2, conv3_2, conv4_2
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class VGG16Features(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=False)]
                cin = int(v)
        self.features = nn.Sequential(*layers)

    @classmethod
    def from_file(cls, path: Path) -> "VGG16Features":
        net = cls()
        try:
            tensors = load_file(str(path))
        except Exception as e:  # noqa: BLE001 — safetensors raises several types for a non-safetensors file
            raise CheckpointError(f"--perceptual-weights {path}: not a safetensors file ({e})") from None
        own = net.state_dict()
        state = {k: v for k, v in tensors.items() if k in own}
        missing = sorted(set(own) - set(state))
        if missing:
            raise CheckpointError(f"--perceptual-weights {path} lacks VGG16 tensors {missing[:4]} (expected "
                                  f"torchvision names features.<i>.weight/bias)")
        net.load_state_dict(state)
        for p in net.parameters():
            p.requires_grad_(False)
        return net.eval()

    def forward(self, img: torch.Tensor) -> list[torch.Tensor]:
        """img [B,3,S,S] in [-1,1] -> activations at the four taps."""
        x = F.interpolate((img + 1) / 2, size=(224, 224), mode="bilinear", align_corners=False)
        x = (x - MEAN) / STD
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in TAPS:
                out.append(x)
        return out
