"""Firefox OS emoji (Mozilla), Apache-2.0, from npm `@iconify-json/fxemoji`. Its `tramcar` renders black (the set
dropped its CSS) and is left out."""
from __future__ import annotations

from training.sources import npm
from training.sources.base import Art, Emoji, Source
from training.sources.iconify import IconSet

ICONS = IconSet("fxemoji", npm.NpmPackage(
    "@iconify-json/fxemoji", "1.2.2",
    "sha512-UAasRaxzFUKfIGSmLwnoarsssA4LX0VLLuEmplIqM6ZNQqIQRtav8tZ4H1neTlBreXuMQyAifr5jP4kn78DpiQ=="))
BROKEN = {"tramcar"}


def render(emoji: Emoji, lineart: bool) -> Art | None:
    return None if ICONS.icon_name(emoji) in BROKEN else ICONS.art(emoji)


SOURCE = Source("fxemoji", "Apache-2.0", "Firefox OS Emoji by Mozilla", "npm @iconify-json/fxemoji@1.2.2", render)
