"""Colour emoji fonts drawn with Pillow (`embedded_color`): the one way the font-based styles render."""
from __future__ import annotations

from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from training.sources.base import codepoints_text


@lru_cache(maxsize=4)
def font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def draw(path: str, size: int, unified: str) -> Image.Image | None:
    """The emoji drawn at `size` on a transparent canvas, or None when the font has no glyph for it."""
    canvas = Image.new("RGBA", (size * 2, size * 2), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((size // 2, size // 2), codepoints_text(unified), font=font(path, size),
                                embedded_color=True)
    return canvas if canvas.getbbox() else None
