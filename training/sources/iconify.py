"""Iconify JSON icon sets from npm (`@iconify-json/<set>`): SVG bodies by icon name, looked up per emoji.

`icons.json` holds each icon's SVG body and the set's (or the icon's own) viewBox; wrapped in an <svg> element and
rasterised with resvg. The sets that carry no code points name icons by CLDR slug or by their own names, so the
icon of each of our emoji is read from `icon_names.tsv` beside this file (one column per set; empty: the set has no
drawing of that emoji).
"""
from __future__ import annotations

import csv
import json
from functools import lru_cache
from pathlib import Path

from training.sources import npm
from training.sources.base import Art, Emoji, render_svg

NAMES = Path(__file__).with_name("icon_names.tsv")
RENDER_SIDE = 256  # px every icon is drawn at before fitting to the model's side


@lru_cache(maxsize=1)
def icon_names() -> dict[str, dict[str, str]]:
    """set name -> {emoji code points -> icon name}."""
    with NAMES.open(newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    sets = [c for c in rows[0] if c != "unified"]
    return {s: {r["unified"]: r[s] for r in rows if r[s]} for s in sets}


class IconSet:
    """One Iconify set: `svg(emoji)` -> a standalone SVG document of its drawing, or None."""

    def __init__(self, name: str, pkg: npm.NpmPackage) -> None:
        self.name, self.pkg = name, pkg

    @property
    def _data(self) -> dict:
        return _icons(self.pkg)

    def icon_name(self, emoji: Emoji) -> str | None:
        return icon_names()[self.name].get(emoji.unified)

    def body(self, icon: str) -> tuple[str, tuple[float, float, float, float]] | None:
        d = self._data
        item = d["icons"].get(icon)
        if item is None:
            return None
        box = (item.get("left", d.get("left", 0)), item.get("top", d.get("top", 0)),
               item.get("width", d.get("width", 16)), item.get("height", d.get("height", 16)))
        return item["body"], box

    def svg(self, emoji: Emoji, body_edit=None) -> str | None:
        """The emoji's drawing as an SVG document; `body_edit(body) -> body` may rewrite it first."""
        icon = self.icon_name(emoji)
        found = self.body(icon) if icon else None
        if found is None:
            return None
        body, (x, y, w, h) = found
        m = max(w, h)  # square canvas, drawing centred: the rasteriser then never stretches it
        x, y, w, h = x - (m - w) / 2, y - (m - h) / 2, m, m
        if body_edit is not None:
            body = body_edit(body)
        return (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
                f'viewBox="{x} {y} {w} {h}">{body}</svg>')

    def art(self, emoji: Emoji) -> Art | None:
        """The emoji's colour drawing, rasterised (no line art), or None: a colour-only source's `render`."""
        svg = self.svg(emoji)
        return Art(render_svg(svg, RENDER_SIDE)) if svg else None


@lru_cache(maxsize=16)
def _icons(pkg: npm.NpmPackage) -> dict:
    return json.loads(npm.files(pkg)["icons.json"])
