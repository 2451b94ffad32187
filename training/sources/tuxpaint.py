"""Photographs: Tux Paint's photo stamps, real photographs of single objects cut out with alpha.

Debian's `tuxpaint-stamps-default` (pinned version, sha256-checked) is the one registry package found with photos of
our eight classes. The package is fetched at data-build time with `apt-get download` (no install, no root needed;
`make data-install` does it once), only the allow-listed PNGs are extracted into the cache, and the .deb is deleted;
nothing is committed. The allow-list (`tuxpaint_photos.tsv`, made by eye) keeps 206 photo cut-outs and leaves out the
package's clip art, renders and decals: mammal 61, bird 35, marine 17, fruit 26, vegetable 26, flower 25, but bug 8
and ground transport 8.

Licence: Debian's copyright file states GPL-2 for the package; upstream credits mixed sources (Childsplay animals,
GPL; Wikimedia images under GFDL, CC-BY-SA 2.0-3.0, CC-BY 2.5 or public domain; NOAA sea life). Weights trained on
them are treated as under copyleft terms (see docs/model.md).
"""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from training.sources.base import cache_dir, to_square

PACKAGE = "tuxpaint-stamps-default"
VERSION = "2022.06.04-1"
DEB_SHA256 = "6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34"
STAMPS = "usr/share/tuxpaint/stamps"
ALLOW_LIST = Path(__file__).with_name("tuxpaint_photos.tsv")
LICENCE = ("GPL-2 (Debian's copyright file); upstream sources: Childsplay (GPL), Wikimedia Commons (GFDL, "
           "CC-BY-SA 2.0-3.0, CC-BY 2.5, public domain), NOAA (public domain)")
CREDIT = f"Tux Paint stamps by Bill Kendrick and contributors (Debian {PACKAGE} {VERSION})"
ALPHA_MIN = 10  # ~5-10 % of a stamp's pixels are faintly transparent: they do not count for the crop box
VAL_FRACTION = 0.15


class PhotoSourceError(RuntimeError):
    """The photo package could not be fetched or extracted; says what to run."""


@dataclass(frozen=True)
class Stamp:
    """One allow-listed photo: its path under the package's stamp folder, its class and the note made by eye."""

    path: str
    class_name: str
    note: str = ""

    @property
    def name(self) -> str:
        return Path(self.path).stem

    @property
    def group(self) -> str:
        """Near-duplicates share a group (gnu-stand / gnu-sitting, cep / cep-1, apple_red / apple_fuji, a `_mirror`
        copy): the validation split holds out whole groups, so no validation photo has a twin in training."""
        stem = self.name.lower().removesuffix("_mirror")
        return f"{self.class_name}/{re.split(r'[_-]', stem)[0]}"


def allow_list(path: Path = ALLOW_LIST) -> list[Stamp]:
    """The allow-listed stamps, in file order."""
    out = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        out.append(Stamp(parts[0], parts[1], parts[2] if len(parts) > 2 else ""))
    return out


def folder() -> Path:
    """Where the extracted stamps live: `<cache>/tuxpaint-<version>/`."""
    return cache_dir() / f"tuxpaint-{VERSION}"


def _missing(stamps: list[Stamp], root: Path) -> list[Stamp]:
    return [s for s in stamps if not (root / s.path).is_file()]


def fetch(log: Callable[[str], None] = print) -> Path:
    """Every allow-listed PNG under `folder()`, fetched and extracted on first use (~160 MB download, ~10 s)."""
    stamps, root = allow_list(), folder()
    if not _missing(stamps, root):
        return root
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise PhotoSourceError(f"the photo data needs Debian's {PACKAGE} and this machine has no apt-get/dpkg-deb; "
                               f"copy {root} from a machine that has them")
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix="tuxpaint-fetch-") as tmp:
        log(f"fetching {PACKAGE}={VERSION} with apt-get download (~160 MB) ...")
        r = subprocess.run(["apt-get", "download", f"{PACKAGE}={VERSION}"], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob("*.deb"))
        if r.returncode != 0 or len(debs) != 1:
            raise PhotoSourceError(f"`apt-get download {PACKAGE}={VERSION}` failed (exit {r.returncode}): "
                                   f"{r.stderr.strip()[-400:]}. Run `apt-get update` first if the package is unknown")
        deb = debs[0]
        digest = hashlib.sha256(deb.read_bytes()).hexdigest()
        if digest != DEB_SHA256:
            raise PhotoSourceError(f"{deb.name} has sha256 {digest}, expected {DEB_SHA256}: not the pinned package")
        staging = Path(tmp) / "x"
        staging.mkdir()
        wanted = {f"./{STAMPS}/{s.path}" for s in stamps}
        dpkg = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        with tarfile.open(fileobj=dpkg.stdout, mode="r|") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    tar.extract(member, staging, filter="data")
        if dpkg.wait() != 0:
            raise PhotoSourceError(f"dpkg-deb could not read {deb.name}")
        got = staging / STAMPS
        lost = _missing(stamps, got)
        if lost:
            raise PhotoSourceError(f"{len(lost)} allow-listed stamps are not in {PACKAGE} {VERSION}, e.g. "
                                   f"{lost[0].path}")
        if root.exists():
            shutil.rmtree(root)
        got.rename(root)
    log(f"extracted {len(stamps)} photos into {root}")
    return root


def load_rgba(path: Path) -> Image.Image:
    """A stamp as RGBA with the faint fringe (alpha <= ALPHA_MIN) made fully transparent."""
    with Image.open(path) as im:
        rgba = im.convert("RGBA")
    a = np.asarray(rgba)[:, :, 3]
    if (a <= ALPHA_MIN).any():
        arr = np.asarray(rgba).copy()
        arr[a <= ALPHA_MIN, 3] = 0
        rgba = Image.fromarray(arr, "RGBA")
    return rgba


def validation_groups(stamps: list[Stamp], fraction: float = VAL_FRACTION) -> set[str]:
    """Per class, about `fraction` of its near-duplicate groups (at least one where the class has 3 or more),
    chosen by a hash of the group's name: stable whatever else is in the list."""
    out: set[str] = set()
    for c in sorted({s.class_name for s in stamps}):
        groups = sorted({s.group for s in stamps if s.class_name == c},
                        key=lambda g: hashlib.sha256(g.encode()).hexdigest())
        n = max(1, round(fraction * len(groups))) if len(groups) >= 3 else 0
        out.update(groups[:n])
    return out


def photos(side: int, log: Callable[[str], None] = print) -> list[tuple[Stamp, np.ndarray, np.ndarray]]:
    """(stamp, rgb on white, alpha) of every allow-listed photo at `side` px: cropped to the object, padded square,
    object at 90 % of the frame, as the emoji art is fitted."""
    root = fetch(log)
    out = []
    for s in allow_list():
        rgb, alpha = to_square(load_rgba(root / s.path), side)
        out.append((s, rgb, alpha))
    return out


if __name__ == "__main__":  # `make data-install`: fetch once, so that training and tests find the photos offline
    fetch()
