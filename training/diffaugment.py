"""Differentiable augmentation of the images the discriminator sees, real and generated alike (DiffAugment, Zhao et
al. 2020): with a few hundred photos, D otherwise memorises them and stops teaching G. The same kind of transform is
applied to both sides, so D cannot tell real from fake by the augmentation, and it is differentiable, so G learns
through it. Policies (comma-separated, applied in this order): `color` (brightness, saturation, contrast),
`translation` (shift by up to 1/8 of the side, zero-padded), `cutout` (a zeroed square of half the side).
Images are in [-1, 1]. Per-sample random parameters; `augment(a, b, ...)` applies the *same* parameters to several
batches of the same size (pairs stay pairs, e.g. for feature matching of a fake against its real)."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Op = Callable[[list[torch.Tensor], torch.Generator | None], list[torch.Tensor]]


def _rand(n: int, like: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    """n uniform [0, 1) values shaped to broadcast over [n, C, H, W]."""
    return torch.rand(n, 1, 1, 1, generator=gen, device=like.device, dtype=like.dtype)


def _color(xs: list[torch.Tensor], gen: torch.Generator | None) -> list[torch.Tensor]:
    n = xs[0].shape[0]
    bright, sat, contrast = (_rand(n, xs[0], gen) for _ in range(3))
    out = []
    for x in xs:
        x = x + (bright - 0.5)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (sat * 2) + mean
        mean = x.mean(dim=[1, 2, 3], keepdim=True)
        out.append((x - mean) * (contrast + 0.5) + mean)
    return out


def _translation(xs: list[torch.Tensor], gen: torch.Generator | None, ratio: float = 0.125) -> list[torch.Tensor]:
    n, _, h, w = xs[0].shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), generator=gen, device=xs[0].device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), generator=gen, device=xs[0].device)
    gy, gx = torch.meshgrid(torch.arange(h, device=xs[0].device), torch.arange(w, device=xs[0].device), indexing="ij")
    iy = torch.clamp(gy[None] + dy + 1, 0, h + 1)  # +1: into the zero-padded image
    ix = torch.clamp(gx[None] + dx + 1, 0, w + 1)
    b = torch.arange(n, device=xs[0].device)[:, None, None]
    out = []
    for x in xs:
        padded = F.pad(x, [1, 1, 1, 1])  # [n, C, h+2, w+2]
        out.append(padded.permute(0, 2, 3, 1)[b, iy, ix].permute(0, 3, 1, 2).contiguous())
    return out


def _cutout(xs: list[torch.Tensor], gen: torch.Generator | None, ratio: float = 0.5) -> list[torch.Tensor]:
    n, _, h, w = xs[0].shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=gen, device=xs[0].device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=gen, device=xs[0].device)
    gy, gx = torch.meshgrid(torch.arange(h, device=xs[0].device), torch.arange(w, device=xs[0].device), indexing="ij")
    inside = ((gy[None] >= cy - ch // 2) & (gy[None] < cy - ch // 2 + ch) &
              (gx[None] >= cx - cw // 2) & (gx[None] < cx - cw // 2 + cw))
    keep = (~inside)[:, None].to(xs[0].dtype)
    return [x * keep for x in xs]


OPS: dict[str, Op] = {"color": _color, "translation": _translation, "cutout": _cutout}


def parse_policy(policy: str) -> tuple[str, ...]:
    """'color,translation' -> ('color', 'translation'); '' -> () (no augmentation); an unknown name is refused."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    bad = [p for p in names if p not in OPS]
    if bad:
        raise ValueError(f"unknown DiffAugment policy {', '.join(map(repr, bad))} in {policy!r}: expected a comma "
                         f"list of {', '.join(OPS)} (or '' for none)")
    return names


def augment(*xs: torch.Tensor, policy: str | tuple[str, ...],
            generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """`xs` (batches of the same shape) through `policy`, each sample with its own random parameters, the same for
    sample i of every batch. Returns a list, one per input (the inputs themselves when the policy is empty)."""
    names = parse_policy(policy) if isinstance(policy, str) else policy
    shapes = {tuple(x.shape) for x in xs}
    if len(shapes) != 1:
        raise ValueError(f"augment() pairs batches of one shape, got {sorted(shapes)}")
    out = list(xs)
    for name in names:
        out = OPS[name](out, generator)
    return out
