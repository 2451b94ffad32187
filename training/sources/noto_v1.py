"""The old Noto emoji style (Google), Apache-2.0, from npm `@iconify-json/noto-v1`."""
from __future__ import annotations

from training.sources import npm
from training.sources.base import Art, Emoji, Source, render_svg
from training.sources.iconify import RENDER_SIDE, IconSet

ICONS = IconSet("noto-v1", npm.NpmPackage(
    "@iconify-json/noto-v1", "1.2.5",
    "sha512-/DsVMius69Q0fRS53z7QK1TROSuar606jiIx+laXtdsYGMXpf6LtHBx6CGfoo3UHHb/XpBsw+1L1x3eyPqMuVA=="))


def render(emoji: Emoji, lineart: bool) -> Art | None:
    svg = ICONS.svg(emoji)
    return Art(render_svg(svg, RENDER_SIDE)) if svg else None


SOURCE = Source("noto-v1", "Apache-2.0", "Noto Emoji (old style) by Google", "npm @iconify-json/noto-v1@1.2.5",
                render)
