"""Model and training configuration: one dataclass each, named presets, JSON round-trip.

Every knob lives here (pix2pix's options idea): the config is printed at start and written beside every
checkpoint, so a result can be reproduced from its folder alone.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of generator and discriminator (widths follow the official code as multiples of `width`)."""

    resolution: int = 64
    width: int = 16  # "S" in the reference: encoder widths S,2S,4S,8S; decoder 6S,4S,2S,2S,S
    noise_dim: int = 64
    num_classes: int = 8
    mru_variant: str = "official"  # "official" (v3 encoder / v2 decoder) or "paper" (sigmoid gates)
    distance_steps: int = 8  # truncation of the in-graph distance map, in pixels at `resolution`
    minmax_eps: float = 1e-5  # deviation: the official MinMax gate has no epsilon (NaN on a constant map)

    def __post_init__(self) -> None:
        if self.resolution < 32 or self.resolution & (self.resolution - 1):
            raise ValueError(f"ModelConfig.resolution must be a power of two >= 32, got {self.resolution}")
        for name in ("width", "noise_dim", "num_classes"):
            if getattr(self, name) < 1:
                raise ValueError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.mru_variant not in ("official", "paper"):
            raise ValueError(f"ModelConfig.mru_variant must be 'official' or 'paper', got {self.mru_variant!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, losses and schedule. Defaults are the reference's (graph_single.py, main_single.py)."""

    steps: int = 3000
    batch_size: int = 16
    lr_g: float = 2e-4
    lr_d: float = 4e-4
    betas: tuple[float, float] = (0.0, 0.9)
    lr_floor: float = 0.2  # lr multiplier max(floor, 1 - 0.9 t/T)
    w_l1: float = 10.0
    w_perceptual: float = 3.0  # 10 * 0.3 in the reference
    w_diversity: float = 10.0
    # "l2": |dG| / ||dz||_2 as the reference; "rms": / (||dz||_2 / sqrt(Z)), independent of the noise size
    diversity_norm: str = "l2"
    # > 0: each sample's diversity ratio counts up to this much and no more (losses.diversity); 0: unbounded
    diversity_cap: float = 0.0
    w_ac_fake: float = 0.5
    w_ac_real: float = 1.0
    focal_gamma: float = 2.0
    weight_decay_conv: float = 1e-5
    weight_decay_fc: float = 1e-6
    ema_decay: float = 0.999
    curriculum_start: float = 0.2  # probability of a real sketch (vs edge map) at t=0, ramps by +0.6
    curriculum_ramp: float = 0.6
    # pen-like strokes (training/edges.py::HumanStrokes: thinned 1-3 px, sparse outlines, gaps) on a sketch with
    # the curriculum's probability, so the model meets hand-drawn input more often as training goes on
    human_strokes: bool = False
    # several output styles: each batch's sketches of the other styles are also drawn in the default style (0,
    # photo) and judged by D alone (GAN + class terms, no pixel loss: those drawings have no photo). Teaches the
    # photo style the line drawings only the art data has; 0 turns it off
    w_cross_style: float = 0.0
    # draw the cross-style items with both noise draws and put them under the diversity term too (w_diversity):
    # with one draw and only D's terms, nothing asks the photo style's seeds to differ on line drawings
    cross_style_diversity: bool = False
    # differentiable augmentation of every image D sees, real and fake (training/diffaugment.py: a comma list of
    # color, translation, cutout; "" for none): the remedy for a D that memorises a few hundred photos
    diff_augment: str = ""
    # which noise draw the pixel (L1) loss pulls towards the photo: "first" (the reference) or "nearest" (per sample,
    # the draw already closer to it). With one photo per sketch, "first" pins every seed to that photo and spends
    # the diversity term; "nearest" lets the other draw differ (a min-of-N reconstruction loss)
    l1_draw: str = "first"
    sample_every: int = 250
    checkpoint_every: int = 500
    log_every: int = 10
    seed: int = 0
    num_threads: int = 0  # 0: torch default
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        from training.diffaugment import parse_policy
        parse_policy(self.diff_augment)  # an unknown name is refused here, with the names it knows
        if self.l1_draw not in ("first", "nearest"):
            raise ValueError(f"TrainConfig.l1_draw must be 'first' or 'nearest', got {self.l1_draw!r}")


@dataclass(frozen=True)
class Pix2PixConfig:
    """The pix2pix baseline (training/pix2pix.py): its U-Net width and its own short schedule."""

    resolution: int = 64
    width: int = 32
    steps: int = 2500
    batch_size: int = 16
    lr: float = 2e-4
    w_l1: float = 100.0
    seed: int = 0
    num_threads: int = 0
    human_strokes: bool = False  # the same pen-like stroke augmentation as SketchyGAN's (TrainConfig.human_strokes)


PRESETS: dict[str, tuple[ModelConfig, TrainConfig]] = {
    # Seconds on a laptop: for tests only.
    "tiny": (
        ModelConfig(resolution=32, width=4, noise_dim=8, num_classes=4, distance_steps=4),
        TrainConfig(steps=20, batch_size=4, sample_every=10, checkpoint_every=10, log_every=5, ema_decay=0.9),
    ),
    # The shipped default: 64x64, trainable on 2 CPU cores in under two hours.
    "cpu": (
        ModelConfig(resolution=64, width=16, noise_dim=64, num_classes=8, distance_steps=8),
        # channels_last: 1.23x (make bench-train); rms diversity: the l2 form left the noise unused (docs/model.md)
        TrainConfig(steps=6000, batch_size=16, ema_decay=0.995, channels_last=True, diversity_norm="rms",
                    human_strokes=True),
    ),
    # Official widths (S=64), noise 256; resolution can be raised to 128/256 with --resolution.
    "paper": (
        ModelConfig(resolution=64, width=64, noise_dim=256, num_classes=50, distance_steps=16),
        TrainConfig(steps=300_000, batch_size=32, sample_every=1000, checkpoint_every=5000, log_every=50),
    ),
}


def preset(name: str) -> tuple[ModelConfig, TrainConfig]:
    """Return the (model, train) configs of a named preset."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def model_config_from_dict(d: dict[str, Any]) -> ModelConfig:
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"model config has unknown keys {sorted(unknown)}; expected a subset of {sorted(known)}")
    return ModelConfig(**d)


def train_config_from_dict(d: dict[str, Any]) -> TrainConfig:
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    d = {k: (tuple(v) if k == "betas" else v) for k, v in d.items() if k in known}
    return TrainConfig(**d)


def describe(model: ModelConfig, train: TrainConfig, preset_name: str) -> str:
    """Human-readable config dump with values that differ from the preset marked by '*'."""
    base_m, base_t = PRESETS.get(preset_name, (ModelConfig(), TrainConfig()))
    lines = [f"preset: {preset_name}"]
    for title, cfg, base in (("model", model, base_m), ("train", train, base_t)):
        lines.append(f"[{title}]")
        for f in dataclasses.fields(cfg):
            v, b = getattr(cfg, f.name), getattr(base, f.name)
            lines.append(f"  {f.name} = {v}{'  *' if v != b else ''}")
    return "\n".join(lines)


def dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
