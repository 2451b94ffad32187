"""The old Noto emoji style (Google), Apache-2.0, from npm `@iconify-json/noto-v1`."""
from __future__ import annotations

from training.sources import npm
from training.sources.base import Art, Emoji, Source
from training.sources.iconify import IconSet

ICONS = IconSet("noto-v1", npm.NpmPackage(
    "@iconify-json/noto-v1", "1.2.5",
    "sha512-/DsVMius69Q0fRS53z7QK1TROSuar606jiIx+laXtdsYGMXpf6LtHBx6CGfoo3UHHb/XpBsw+1L1x3eyPqMuVA=="))


def render(emoji: Emoji, lineart: bool) -> Art | None:
    return ICONS.art(emoji)


SOURCE = Source("noto-v1", "Apache-2.0", "Noto Emoji (old style) by Google", "npm @iconify-json/noto-v1@1.2.5",
                render)
