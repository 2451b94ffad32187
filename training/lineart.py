"""OpenMoji's designer-drawn line art: the "human sketch" half of the emoji data's edge-map -> sketch curriculum.

OpenMoji draws every emoji twice, in colour (`color/svg/`) and as black line art (`black/svg/`): a sketch <-> image
pair of the kind the Sketchy database provides. Both come from the npm package `openmoji` (CC BY-SA 4.0), fetched
once with `npm pack` (the only registry these machines reach for it), checked against its pinned sha512 integrity
and cached; SVGs are rasterised with resvg (`resvg-py`, pinned). Nothing is downloaded when the cache is present.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

OPENMOJI_VERSION = "17.0.0"
OPENMOJI_INTEGRITY = ("sha512-EBnYrNGdcdw+OSXmENeNE1yBNRu6tOraTmoOyUbJkTmvT/+XETp8RZLSJFzD3lrPc5N9CzsyPnRTk0Vp4UaI9w==")
RENDER_SIDE = 288  # px the SVGs (72 x 72 user units) are drawn at before fitting to the model's side


class LineArtError(RuntimeError):
    """The OpenMoji package could not be fetched, or is not the pinned one."""


def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def openmoji_tarball(cache: Path) -> Path:
    """The pinned `openmoji` npm tarball in `cache` (fetched with `npm pack` on first use, integrity-checked)."""
    path = cache / f"openmoji-{OPENMOJI_VERSION}.tgz"
    if not path.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise LineArtError("the line-art data needs `npm` to fetch the openmoji package once (apt-get install "
                               f"npm), or place openmoji-{OPENMOJI_VERSION}.tgz in {cache}")
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            r = subprocess.run([npm, "pack", f"openmoji@{OPENMOJI_VERSION}", "--pack-destination", tmp],
                               capture_output=True, text=True, timeout=600)
            got = Path(tmp) / path.name
            if r.returncode != 0 or not got.exists():
                raise LineArtError(f"`npm pack openmoji@{OPENMOJI_VERSION}` failed: {r.stderr.strip()[-500:]}")
            os.replace(got, path)
    if _integrity(path) != OPENMOJI_INTEGRITY:
        raise LineArtError(f"{path} is not openmoji {OPENMOJI_VERSION} (integrity {_integrity(path)} != pinned "
                           f"{OPENMOJI_INTEGRITY}); delete it to fetch again")
    return path


class OpenMojiSvgs:
    """Colour and black SVG sources of the pinned package, looked up by emoji code point sequence."""

    def __init__(self, tarball: Path) -> None:
        self._svgs: dict[str, bytes] = {}
        with tarfile.open(tarball, "r:gz") as tar:
            for m in tar.getmembers():
                parts = m.name.split("/")
                if m.isfile() and len(parts) == 4 and parts[1] in ("black", "color") and parts[2] == "svg":
                    self._svgs[f"{parts[1]}/{parts[3]}"] = tar.extractfile(m).read()

    def svg(self, kind: str, unified: str) -> bytes | None:
        """`kind` 'black' or 'color'; OpenMoji names files by upper-case code points, without FE0F when alone."""
        for name in (unified.upper(), unified.upper().replace("-FE0F", "")):
            data = self._svgs.get(f"{kind}/{name}.svg")
            if data is not None:
                return data
        return None


def render_svg(svg: bytes, side: int = RENDER_SIDE) -> Image.Image:
    """RGBA raster of an SVG, `side` px square, transparent background."""
    import resvg_py
    png = resvg_py.svg_to_bytes(svg_string=svg.decode("utf-8"), width=side, height=side)
    return Image.open(io.BytesIO(bytes(png))).convert("RGBA")


def line_sketch(black: Image.Image, box: tuple[int, int, int, int], side: int) -> np.ndarray:
    """The black line art as a model-side sketch (ink 0 on 255), cropped to `box` — the colour drawing's alpha box,
    so sketch and image stay aligned — then fitted like `emoji_data._to_square` does the image."""
    from training.emoji_data import _to_square
    a = np.asarray(black)[:, :, 3]
    dark = (np.asarray(black)[:, :, :3].mean(axis=2) < 128) & (a > 127)
    ink = Image.fromarray(np.where(dark, 255, 0).astype(np.uint8)).crop(box)
    rgba = Image.new("RGBA", ink.size, (0, 0, 0, 0))
    rgba.putalpha(ink)
    _, alpha = _to_square(rgba, side, crop=False)
    return np.where(alpha > 96, 0, 255).astype(np.uint8)


@lru_cache(maxsize=1)
def load_svgs(cache: str) -> OpenMojiSvgs:
    return OpenMojiSvgs(openmoji_tarball(Path(cache)))
