"""EmojiOne 1.5 colour art, CC-BY-SA-4.0, from npm `@iconify-json/emojione-v1`."""
from __future__ import annotations

from training.sources import npm
from training.sources.base import Art, Emoji, Source
from training.sources.iconify import IconSet

ICONS = IconSet("emojione-v1", npm.NpmPackage(
    "@iconify-json/emojione-v1", "1.2.3",
    "sha512-UjI2VQEXVtGlPBvQuxEizro7QCgBcJDOYwKUupquvvZ8UV4xOlvm45IU82JYWegiAWLerY79gFLMZ26U6Ms+ww=="))


def render(emoji: Emoji, lineart: bool) -> Art | None:
    return ICONS.art(emoji)


SOURCE = Source("emojione-v1", "CC-BY-SA-4.0", "Emoji One (EmojiOne 1.5)", "npm @iconify-json/emojione-v1@1.2.3",
                render)
