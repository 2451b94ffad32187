"""Output styles: one generator that draws a sketch as a photograph or as emoji art, chosen per request.

A style is a second condition next to the class. The generator is conditioned only through class-conditional batch
norm (a gain and a bias per class), so a style costs nothing new in the network: the conditioning table gets one
row per (style, class), label = style * C + class, and the discriminator's auxiliary classifier tells all C x S
apart, which pushes a photo-style output to look like a photograph of its class. The photo style starts from what
the art model learned (its rows are copies of the art model's, `expand_state`) and shares every convolution with
it; only its gains and biases are its own.

Style 0 is the default, so a caller that names no style (an older client, a raw tritonclient call) gets it.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

STYLES = ("photo", "art")  # index = the STYLE input; 0 is the default
DEFAULT_STYLE = STYLES[0]
# `--data default-v4`: each style's data set, by name (training/data.py)
STYLED_DATA = {"default-v4": {"photo": "photos", "art": "default-v3"}}


def label(class_id, style_id, num_classes: int):
    """The conditioning row of (class, style): style-major, so style 0's rows are the plain class ids."""
    return style_id * num_classes + class_id


def merge(parts: dict, class_names: list[str]):
    """One data set of several styles (`{style: PairedData}`, in STYLES order): every part's classes aligned by
    name to `class_names`, labels made (style, class) rows, the art sources' style indices kept for the art part."""
    from training.data import PairedData, align_classes
    unknown = [s for s in parts if s not in STYLES]
    if unknown or not parts:
        raise ValueError(f"unknown styles {unknown or list(parts)}; expected some of {list(STYLES)}")
    names = [s for s in STYLES if s in parts]
    c = len(class_names)
    aligned = [align_classes(parts[s], class_names) for s in names]
    offsets = np.cumsum([0] + [len(d.labels) for d in aligned])
    style_of = np.concatenate([np.full(len(d.labels), STYLES.index(s), np.int64) for s, d in zip(names, aligned)])
    return PairedData(
        photos=np.concatenate([d.photos for d in aligned]),
        edges=np.concatenate([d.edges for d in aligned]),
        labels=label(np.concatenate([d.labels for d in aligned]), style_of, c),
        val=np.concatenate([d.val for d in aligned]),
        class_names=list(class_names),
        sketches=np.concatenate([d.sketches.reshape(-1, *aligned[0].photos.shape[1:3]) for d in aligned]),
        sketch_photo=np.concatenate([d.sketch_photo + off for d, off in zip(aligned, offsets)]),
        skipped=sum(d.skipped for d in aligned),
        output_styles=list(STYLES[: max(STYLES.index(s) for s in names) + 1]))


def expand_state(state: dict[str, torch.Tensor], num_classes: int, num_styles: int) -> dict[str, torch.Tensor]:
    """A one-style generator's weights as a `num_styles`-style generator's: every conditional gain/bias table
    (rows = classes) repeated once per style, so each style starts as the given model; other weights unchanged."""
    out = {}
    for k, v in state.items():
        if (k.endswith(".gamma.weight") or k.endswith(".beta.weight")) and v.shape[0] == num_classes:
            v = v.repeat(num_styles, 1)
        out[k] = v
    return out


def styled_config(model_cfg, num_classes: int, num_styles: int):
    """The model config with one conditioning row per (style, class)."""
    return dataclasses.replace(model_cfg, num_classes=num_classes * max(1, num_styles))
