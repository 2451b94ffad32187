"""Firefox OS emoji (Mozilla), Apache-2.0, from npm `@iconify-json/fxemoji`. Its `tramcar` renders black (the set
dropped its CSS) and is left out."""
from __future__ import annotations

from training.sources import npm
from training.sources.base import Art, Emoji, Source, render_svg
from training.sources.iconify import RENDER_SIDE, IconSet

ICONS = IconSet("fxemoji", npm.NpmPackage(
    "@iconify-json/fxemoji", "1.2.2",
    "sha512-UAasRaxzFUKfIGSmLwnoarsssA4LX0VLLuEmplIqM6ZNQqIQRtav8tZ4H1neTlBreXuMQyAifr5jP4kn78DpiQ=="))
BROKEN = {"tramcar"}


def render(emoji: Emoji, lineart: bool) -> Art | None:
    if ICONS.icon_name(emoji) in BROKEN:
        return None
    svg = ICONS.svg(emoji)
    return Art(render_svg(svg, RENDER_SIDE)) if svg else None


SOURCE = Source("fxemoji", "Apache-2.0", "Firefox OS Emoji by Mozilla", "npm @iconify-json/fxemoji@1.2.2", render)
