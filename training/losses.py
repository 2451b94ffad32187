"""SketchyGAN losses (graph_single.py): non-saturating GAN, focal auxiliary classifier, L1, perceptual, diversity."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F


def gan_loss_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """mean softplus(D(G)) + mean softplus(-D(x)), averaged over D's patch (L392-423)."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def gan_loss_g(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: mean softplus(-D(G))."""
    return F.softplus(-fake_logits).mean()


def focal_ce(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """mean((1 - p_y)^gamma * CE): the discriminator's auxiliary loss on real images (L334-345)."""
    ce = F.cross_entropy(logits, target, reduction="none")
    p_y = torch.exp(-ce)
    return ((1.0 - p_y) ** gamma * ce).mean()


def l1(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    return (fake - real).abs().mean()


def l1_nearest(fake1: torch.Tensor, fake2: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Per sample, the L1 of whichever noise draw is closer to the target (a min-of-N reconstruction loss): one
    target per sketch then pulls one draw, not every draw, so the seeds are free to differ."""
    d1 = (fake1 - real).abs().flatten(1).mean(1)
    d2 = (fake2 - real).abs().flatten(1).mean(1)
    return torch.minimum(d1, d2).mean()


def feature_matching(real_feats: Sequence[torch.Tensor], fake_feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Default perceptual loss: sum over layers of mean |phi_l(real) - phi_l(fake)| with phi = D's MRU blocks.

    Deviation: the reference uses frozen Inception-v4 layers, which cannot be downloaded here.
    """
    return sum((r.detach() - f).abs().mean() for r, f in zip(real_feats, fake_feats))


def perceptual(extract: Callable[[torch.Tensor], Sequence[torch.Tensor]], fake: torch.Tensor,
               real: torch.Tensor) -> torch.Tensor:
    """Perceptual loss with a frozen feature extractor (e.g. VGG16 from a local weights file)."""
    with torch.no_grad():
        rf = extract(real)
    return sum((r - f).abs().mean() for r, f in zip(rf, extract(fake)))


def diversity(fake1: torch.Tensor, fake2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor,
              norm: str = "l2", cap: float = 0.0) -> torch.Tensor:
    """-mean(|G(s,z1) - G(s,z2)| / ||z1 - z2||), per-sample noise distance broadcast over pixels (L594-599).

    norm="rms" divides by the RMS noise distance ||z1 - z2|| / sqrt(Z) instead (deviation: with the L2 norm the
    term shrinks with sqrt(Z) and the L1 loss wins; our cpu run ignored the noise entirely).
    cap > 0 bounds each sample's ratio (as DSGAN's tau): past it a draw gains nothing by differing more, so the term
    cannot be won by one draw turning into a negative or a blot."""
    if norm not in ("l2", "rms"):
        raise ValueError(f"diversity norm must be 'l2' or 'rms', got {norm!r}")
    dz = (z1 - z2).flatten(1).norm(dim=1)
    if norm == "rms":
        dz = dz / z1.flatten(1).shape[1] ** 0.5
    dz = dz.clamp_min(1e-8).view(-1, 1, 1, 1)
    if cap <= 0:
        return -((fake1 - fake2).abs() / dz).mean()
    return -((fake1 - fake2).abs() / dz).flatten(1).mean(1).clamp(max=cap).mean()
