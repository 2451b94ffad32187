"""Noto Color Emoji (Google), from Debian's `fonts-noto-color-emoji` font file. OFL-1.1 / Apache-2.0."""
from __future__ import annotations

from pathlib import Path

from training.sources import fonts
from training.sources.base import Art, Emoji, Source

NOTO_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")


def render(emoji: Emoji, lineart: bool) -> Art | None:
    if not NOTO_FONT.exists():
        raise FileNotFoundError(f"style 'noto' needs {NOTO_FONT} (apt-get install fonts-noto-color-emoji)")
    img = fonts.draw(str(NOTO_FONT), 109, emoji.unified)
    return Art(img) if img is not None else None


SOURCE = Source("noto", "OFL-1.1 / Apache-2.0", "Noto Color Emoji by Google", "Debian fonts-noto-color-emoji",
                render)
