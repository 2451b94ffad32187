"""Packages from the npm registry, fetched once with `npm pack`, checked against a pinned integrity, cached.

npm is the only registry these machines reach for some art (OpenMoji's SVGs, the Iconify emoji sets). Nothing is
downloaded when the tarball is in the cache; a tarball that is not the pinned one is refused, never used.
"""
from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from training.sources.base import cache_dir


class PackageError(RuntimeError):
    """An npm package could not be fetched, or is not the pinned one."""


@dataclass(frozen=True)
class NpmPackage:
    name: str  # `openmoji`, `@iconify-json/emojione`
    version: str
    integrity: str  # npm's sha512 integrity string of the tarball

    @property
    def filename(self) -> str:
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}.tgz"


def integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def tarball(pkg: NpmPackage, cache: Path | None = None) -> Path:
    """The pinned tarball in `cache` (default: <cache_dir>/npm), fetched with `npm pack` on first use."""
    cache = cache or cache_dir() / "npm"
    path = cache / pkg.filename
    if not path.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise PackageError(f"the art of {pkg.name} needs `npm` to fetch the package once (apt-get install npm), "
                               f"or place {pkg.filename} in {cache}")
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            r = subprocess.run([npm, "pack", f"{pkg.name}@{pkg.version}", "--pack-destination", tmp],
                               capture_output=True, text=True, timeout=600)
            got = Path(tmp) / pkg.filename
            if r.returncode != 0 or not got.exists():
                raise PackageError(f"`npm pack {pkg.name}@{pkg.version}` failed: {r.stderr.strip()[-500:]}")
            os.replace(got, path)
    if integrity(path) != pkg.integrity:
        raise PackageError(f"{path} is not {pkg.name} {pkg.version} (integrity {integrity(path)} != pinned "
                           f"{pkg.integrity}); delete it to fetch again")
    return path


def files(pkg: NpmPackage) -> dict[str, bytes]:
    """Every regular file of the package, by its path inside the tarball without the leading `package/`."""
    return _files(pkg, str(cache_dir() / "npm"))


@lru_cache(maxsize=16)
def _files(pkg: NpmPackage, cache: str) -> dict[str, bytes]:
    out = {}
    with tarfile.open(tarball(pkg, Path(cache)), "r:gz") as tar:
        for m in tar.getmembers():
            if m.isfile() and m.name.startswith("package/"):
                out[m.name[len("package/"):]] = tar.extractfile(m).read()
    return out
