"""A learned 2x upsampler for the generator's 64 px images: bicubic plus a residual that a small convolutional net
predicts at the low resolution and unfolds with a pixel shuffle (ESPCN, Shi et al. 2016; the residual over bicubic as
in VDSR). Trained on the (64 px, 128 px) renderings of the same photos and art, so it learns the detail the 64 px
data throws away (training/upsampler_train.py); served fused into the generator's graph (export/graph.py)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from training import checkpoint as ckpt

KIND = "upsampler"
SHIPPED_UPSAMPLER = Path("checkpoints/upsampler-2x.safetensors")


@dataclass(frozen=True)
class UpsamplerConfig:
    width: int = 32  # channels of the hidden convolutions (at the low resolution)
    depth: int = 4  # 3x3 convolutions before the one that makes the scale**2 sub-pixel planes
    scale: int = 2

    def __post_init__(self) -> None:
        for name, low in (("width", 1), ("depth", 1), ("scale", 2)):
            if getattr(self, name) < low:
                raise ValueError(f"UpsamplerConfig.{name} must be at least {low}, got {getattr(self, name)}")


class Upsampler(nn.Module):
    def __init__(self, cfg: UpsamplerConfig = UpsamplerConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        cin = 3
        for _ in range(cfg.depth):
            layers += [nn.Conv2d(cin, cfg.width, 3, padding=1, padding_mode="replicate"), nn.LeakyReLU(0.1)]
            cin = cfg.width
        last = nn.Conv2d(cin, 3 * cfg.scale**2, 3, padding=1, padding_mode="replicate")
        nn.init.zeros_(last.weight)  # starts as plain bicubic
        nn.init.zeros_(last.bias)
        self.body = nn.Sequential(*layers, last, nn.PixelShuffle(cfg.scale))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """img [B,3,S,S] in [-1,1] -> [B,3,scale*S,scale*S] in [-1,1]."""
        return (bicubic(img, self.cfg.scale) + self.body(img)).clamp(-1.0, 1.0)


def bicubic(img: torch.Tensor, scale: int) -> torch.Tensor:
    """The baseline the upsampler adds its residual to (and is measured against)."""
    return F.interpolate(img, scale_factor=float(scale), mode="bicubic", align_corners=False).clamp(-1.0, 1.0)


def save_upsampler(path: Path, model: Upsampler, meta: dict) -> None:
    ckpt.save(path, {f"upsampler.{k}": v for k, v in model.state_dict().items()},
              {**meta, "kind": KIND, "upsampler": asdict(model.cfg)})


def load_upsampler(path: Path) -> tuple[Upsampler, dict]:
    """An upsampler checkpoint (safetensors + sidecar) -> the module in eval mode and its sidecar."""
    tensors, meta = ckpt.load(path)
    if meta.get("kind") != KIND:
        raise ckpt.CheckpointError(f"{path} is a {meta.get('kind')!r} checkpoint, not an upsampler "
                                   f"(python -m training upsampler writes one)")
    try:
        cfg = UpsamplerConfig(**meta["upsampler"])
    except (KeyError, TypeError, ValueError) as e:
        raise ckpt.CheckpointError(f"{ckpt.sidecar_path(path)} has no valid upsampler config: {e}") from None
    model = Upsampler(cfg)
    ckpt.load_state(model, tensors, "upsampler", path)
    return model.eval(), meta
