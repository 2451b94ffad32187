"""EmojiOne 2.3 (the free release; "Emoji One"), CC-BY-4.0, from npm `@iconify-json/emojione`; its line art is
`@iconify-json/emojione-monotone`: the same drawings in black ink on the same 64 x 64 canvas, so each pair is aligned
(a few differ in pose; about a quarter are mostly solid black)."""
from __future__ import annotations

from training.sources import npm
from training.sources.base import Art, Emoji, Source, render_svg
from training.sources.iconify import RENDER_SIDE, IconSet

COLOUR = IconSet("emojione", npm.NpmPackage(
    "@iconify-json/emojione", "1.2.3",
    "sha512-T9+T3HIbJNLKKsmxYKlaYhvnHYkz/HNYTV7SHCXVZPfeUi4FqskY70YeN8yYAZT8cCv7w5vJxS4Q1m8zb9CMMg=="))
MONOTONE = IconSet("emojione-monotone", npm.NpmPackage(
    "@iconify-json/emojione-monotone", "1.2.1",
    "sha512-cZSNcPsuiAD6HCzCh/2dYKGh3pNI0jJlxBxQWfC33cQsPtqYZqulGBvlkThXYNvDl8VxgVHT9u+izyX/yeEIkA=="))


def render(emoji: Emoji, lineart: bool) -> Art | None:
    colour = COLOUR.svg(emoji)
    if colour is None:
        return None
    black = MONOTONE.svg(emoji) if lineart else None
    return Art(render_svg(colour, RENDER_SIDE), render_svg(black, RENDER_SIDE) if black else None)


SOURCE = Source("emojione", "CC-BY-4.0", "Emoji One (EmojiOne 2.3, free release)",
                "npm @iconify-json/emojione@1.2.3 + @iconify-json/emojione-monotone@1.2.1 (line art)", render,
                has_lineart=True)
