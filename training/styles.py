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

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

STYLES = ("photo", "art")  # index = the style's place in CLASS_ID (class + style x classes); 0 is the default
# `--data default-v4`: each style's data set, by name (training/data.py); default-v5: the photos also paired with thin
# line drawings made from them (training/line_drawing.py)
STYLED_DATA = {"default-v4": {"photo": "photos", "art": "default-v3"},
               "default-v5": {"photo": "photos-lines", "art": "default-v3"}}


def sketch_data(spec: str, inputs: str, style: str | None) -> str:
    """The one-style data set whose validation sketches a checkpoint trained on `spec` is scored or drawn on: for a
    data set with output styles, its line drawings (the art data) for the thin-stroke set, else the edge maps of the
    drawn style's own images (None: the default style's); any other data set is itself."""
    if spec not in STYLED_DATA:
        return spec
    return STYLED_DATA[spec]["art"] if inputs == "thin" else STYLED_DATA[spec][style or STYLES[0]]


def label(class_id, style_id, num_classes: int):
    """The conditioning row of (class, style): style-major, so style 0's rows are the plain class ids."""
    return style_id * num_classes + class_id


def expand_state(state: dict[str, torch.Tensor], num_classes: int, num_styles: int) -> dict[str, torch.Tensor]:
    """A one-style generator's weights as a `num_styles`-style generator's: every conditional gain/bias table
    (rows = classes) repeated once per style, so each style starts as the given model; other weights unchanged."""
    out = {}
    for k, v in state.items():
        if (k.endswith(".gamma.weight") or k.endswith(".beta.weight")) and v.shape[0] == num_classes:
            v = v.repeat(num_styles, 1)
        out[k] = v
    return out
