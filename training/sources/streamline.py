"""Streamline Emojis, CC-BY-4.0 (credit "Streamline"), from npm `@iconify-json/streamline-emojis`.

Its drawings have explicit dark outline strokes, so a line drawing aligned with the colour image by construction is
derived from the same SVG: shadows (translucent shapes) dropped, dark fills black, other fills white (they still
hide what they cover), every stroke black.
"""
from __future__ import annotations

import re

from training.sources import npm
from training.sources.base import Art, Emoji, Source, render_svg
from training.sources.iconify import RENDER_SIDE, IconSet

ICONS = IconSet("streamline-emojis", npm.NpmPackage(
    "@iconify-json/streamline-emojis", "1.2.4",
    "sha512-iNr9T9XuZVTyQPJO8ZlLxBzPkpi7qMl+z1l0C31vpEMqhPMelth3n7CeWQYtixdetDPdI81yeG4ROqjWpYJE6A=="))
DARK = 0.3  # fills darker than this (relative luminance) are ink
_TRANSLUCENT = re.compile(r'<(\w+)[^>]*\sopacity="(0?\.\d+)"[^>]*/>')
_COLOUR = re.compile(r'\b(fill|stroke)="(#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6})"')


def _luminance(hex_colour: str) -> float:
    h = hex_colour[1:]
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    r, g, b = (int(h[i:i + 2], 16) / 255.0 for i in (0, 2, 4))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def outline(body: str) -> str:
    """The SVG body as black line art."""
    body = _TRANSLUCENT.sub("", body)

    def ink(m: re.Match) -> str:
        attr, colour = m.group(1), m.group(2)
        black = attr == "stroke" or _luminance(colour) < DARK
        return f'{attr}="{"#000" if black else "#fff"}"'
    return _COLOUR.sub(ink, body)


def render(emoji: Emoji, lineart: bool) -> Art | None:
    svg = ICONS.svg(emoji)
    if svg is None:
        return None
    line = render_svg(ICONS.svg(emoji, body_edit=outline), RENDER_SIDE) if lineart else None
    return Art(render_svg(svg, RENDER_SIDE), line)


SOURCE = Source("streamline", "CC-BY-4.0", "Streamline Emojis by Streamline (streamlinehq.com)",
                "npm @iconify-json/streamline-emojis@1.2.4", render, has_lineart=True)
