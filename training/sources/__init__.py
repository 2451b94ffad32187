"""Art sources of the emoji dataset: one module per style, each exposing `SOURCE` (training/sources/base.py).

Adding a style is one module here and one line in `SOURCES`. Sources import only `base`, `npm`, `iconify` and
`fonts`, never the dataset builder, so there is no import cycle.
"""
from __future__ import annotations

from training.sources import emojione, emojione_v1, fxemoji, noto, noto_v1, openmoji, streamline, twemoji
from training.sources.base import Art, Emoji, Source, cache_dir

SOURCES: dict[str, Source] = {m.SOURCE.name: m.SOURCE for m in (
    twemoji, openmoji, noto, emojione, emojione_v1, fxemoji, noto_v1, streamline)}

__all__ = ["Art", "Emoji", "SOURCES", "Source", "cache_dir"]
