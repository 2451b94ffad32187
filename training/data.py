"""Datasets as in-memory arrays at model resolution (the batch sampler that draws from them: training/sampler.py).

Four kinds of data, one container (`PairedData`):
- `default`, `default-v2`, `default-v3`: the offline emoji datasets (training/emoji_data.py, art from
  training/sources/);
- `photos`: Tux Paint's photo stamps (training/sources/tuxpaint.py), real photographs cut out with alpha;
- a Sketchy database root (`photo/tx_000000000000/<class>/`, `sketch/tx_000000000000/<class>/`, `info/`);
- any folder of `<class>/<photo>` images, paired with synthesised edge maps.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from training.edges import photo_edge_map, resize_sketch
from training.split import is_validation, keep_pairs
from training.styles import STYLED_DATA, STYLES, label

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
SKETCHY_VARIANT = "tx_000000000000"
SKETCHY_FLAGS = ("WrongPose?", "Context?", "Ambiguous?", "Error?")


class DatasetError(ValueError):
    """A dataset path or its contents is not what the loader expects."""


@dataclass
class PairedData:
    """Photos with edge maps, optional human sketches, labels and a train/validation split."""

    photos: np.ndarray  # [N,S,S,3] uint8
    edges: np.ndarray  # [N,S,S] uint8, synthesised edge map of each photo (ink 0 on 255)
    labels: np.ndarray  # [N] int64
    val: np.ndarray  # [N] bool
    class_names: list[str]
    sketches: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 1), np.uint8))  # [M,S,S] human sketches
    sketch_photo: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # [M] photo index per sketch
    skipped: int = 0  # unreadable files skipped while loading
    styles: np.ndarray | None = None  # [N] index into style_names (the emoji data's art sources), else None
    style_names: list[str] = field(default_factory=list)
    output_styles: list[str] = field(default_factory=list)  # set: labels are (style, class) rows (training/styles.py)

    @property
    def resolution(self) -> int:
        return int(self.photos.shape[1])

    @property
    def num_labels(self) -> int:
        """Conditioning rows the generator needs: classes x output styles."""
        return len(self.class_names) * max(1, len(self.output_styles))

    @property
    def class_of(self) -> np.ndarray:
        """[N] the class of each item, whatever its style."""
        return self.labels % len(self.class_names)

    def fingerprint(self) -> str:
        """sha256 over the arrays, so a checkpoint records exactly what it was trained on."""
        h = hashlib.sha256()
        for a in (self.photos, self.edges, self.labels, self.val, self.sketches, self.sketch_photo):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update("\n".join(self.class_names).encode())
        if self.output_styles:
            h.update(("\nstyles:" + ",".join(self.output_styles)).encode())
        return h.hexdigest()

    def split(self, name: str) -> np.ndarray:
        """Photo indices of 'train' or 'val'."""
        if name not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {name!r}")
        return np.flatnonzero(~self.val if name == "train" else self.val)

    def sketch_of(self, idx: int, rng: np.random.Generator) -> np.ndarray | None:
        """A random human sketch of photo `idx`, or None when the photo has none."""
        if not hasattr(self, "_by_photo"):
            self._by_photo: dict[int, np.ndarray] = {}
            order = np.argsort(self.sketch_photo, kind="stable")
            if len(order):
                keys, starts = np.unique(self.sketch_photo[order], return_index=True)
                for k, part in zip(keys, np.split(order, starts[1:])):
                    self._by_photo[int(k)] = part
        options = self._by_photo.get(int(idx))
        return None if options is None else self.sketches[rng.choice(options)]


# ---------------------------------------------------------------- loading

def _read_rgb(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        return np.asarray(im.resize((size, size), Image.BICUBIC))


def _read_gray(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, im).convert("L"))


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())


class _SkipCounter:
    """Counts unreadable images; fails once they exceed `max_fraction` of what was tried."""

    def __init__(self, max_fraction: float) -> None:
        self.max_fraction, self.tried, self.bad, self.examples = max_fraction, 0, 0, []

    def read(self, fn, path: Path):
        self.tried += 1
        try:
            return fn(path)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            self.bad += 1
            if len(self.examples) < 3:
                self.examples.append(f"{path}: {e}")
            return None

    def check(self, what: str) -> None:
        if self.tried and self.bad / self.tried > self.max_fraction:
            raise DatasetError(f"{self.bad} of {self.tried} {what} could not be read (more than "
                               f"{self.max_fraction:.0%} allowed), e.g. {'; '.join(self.examples)}")


def load_photo_folder(root: Path, size: int, val_fraction: float = 0.1, max_bad: float = 0.05) -> PairedData:
    """`root/<class>/<photo>`: every photo paired with its synthesised edge map."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(f"{root} has no class sub-folders; expected {root}/<class>/<photo>.jpg")
    photos, labels, val = [], [], []
    skip = _SkipCounter(max_bad)
    for ci, c in enumerate(tqdm(classes, desc=f"loading {root.name}", leave=False)):
        files = _images(root / c)
        if not files:
            raise DatasetError(f"class folder {root / c} has no images ({', '.join(sorted(IMAGE_EXTS))})")
        for f in files:
            img = skip.read(lambda p: _read_rgb(p, size), f)
            if img is None:
                continue
            photos.append(img)
            labels.append(ci)
            val.append(is_validation(f"{c}/{f.stem}", val_fraction))
    skip.check("photos")
    photos_a = np.stack(photos)
    edges = np.stack([photo_edge_map(p) for p in photos_a])
    return PairedData(photos_a, edges, np.array(labels, np.int64), np.array(val, bool), classes, skipped=skip.bad)


def _sketchy_flagged(root: Path) -> set[str]:
    stats = root / "info" / "stats.csv"
    if not stats.exists():
        return set()
    flagged = set()
    with stats.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if any(row.get(k, "0").strip() not in ("", "0") for k in SKETCHY_FLAGS):
                flagged.add(f"{row.get('Category', '').strip()}/{row.get('ImageNetID', '').strip()}"
                            f"-{row.get('SketchID', '').strip()}")
    return flagged


def load_sketchy(root: Path, size: int, classes: list[str] | None = None, max_bad: float = 0.05) -> PairedData:
    """Sketchy database: photos pair with sketches `<photo id>-<k>.png`; info/testset.txt is the validation split,
    sketches flagged WrongPose/Context/Ambiguous/Error in info/stats.csv are dropped."""
    pdir, sdir = root / "photo" / SKETCHY_VARIANT, root / "sketch" / SKETCHY_VARIANT
    for d in (pdir, sdir):
        if not d.is_dir():
            raise DatasetError(f"{root} is not a Sketchy root: missing {d}")
    pcls = sorted(p.name for p in pdir.iterdir() if p.is_dir())
    scls = sorted(p.name for p in sdir.iterdir() if p.is_dir())
    if pcls != scls:
        only_p, only_s = sorted(set(pcls) - set(scls)), sorted(set(scls) - set(pcls))
        raise DatasetError(f"class folders differ between {pdir} and {sdir}: only photos {only_p}, only sketches "
                           f"{only_s}")
    if classes:
        missing = sorted(set(classes) - set(pcls))
        if missing:
            raise DatasetError(f"requested classes {missing} are not in {pdir}")
        pcls = list(classes)
    if not pcls:
        raise DatasetError(f"{pdir} has no class folders")
    test = set()
    tfile = root / "info" / "testset.txt"
    if tfile.exists():
        test = {line.strip().rsplit(".", 1)[0] for line in tfile.read_text().splitlines() if line.strip()}
    flagged = _sketchy_flagged(root)
    photos, labels, val, sketches, sketch_photo = [], [], [], [], []
    skip = _SkipCounter(max_bad)
    for ci, c in enumerate(tqdm(pcls, desc="loading Sketchy", leave=False)):
        by_id: dict[str, list[Path]] = {}
        for s in _images(sdir / c):
            by_id.setdefault(s.stem.rsplit("-", 1)[0], []).append(s)
        for f in _images(pdir / c):
            img = skip.read(lambda p: _read_rgb(p, size), f)
            if img is None:
                continue
            idx = len(photos)
            photos.append(img)
            labels.append(ci)
            val.append(f"{c}/{f.stem}" in test)
            for s in by_id.get(f.stem, []):
                if f"{c}/{s.stem}" in flagged:
                    continue
                g = skip.read(_read_gray, s)
                if g is not None:
                    sketches.append(resize_sketch(g, size))
                    sketch_photo.append(idx)
    skip.check("Sketchy images")
    if not photos:
        raise DatasetError(f"no readable photos under {pdir}")
    photos_a = np.stack(photos)
    edges = np.stack([photo_edge_map(p) for p in photos_a])
    sk = np.stack(sketches) if sketches else np.zeros((0, size, size), np.uint8)
    return PairedData(photos_a, edges, np.array(labels, np.int64), np.array(val, bool), pcls, sk,
                      np.array(sketch_photo, np.int64), skipped=skip.bad)


# `--data` names of the built-in emoji datasets: v1's data (2 styles, edge maps), v2 (3 styles, OpenMoji's line art
# as human sketches) and v3 (all 8 styles, line art of OpenMoji, EmojiOne and Streamline). All three hold out the
# same 15 % of the emoji (36 of 216), so no model trained on one has seen another's validation emoji.
EMOJI_DATA = {
    "default": {},
    "default-v2": {"styles": ("twemoji", "openmoji", "noto"), "lineart": True},
    "default-v3": {"styles": ("twemoji", "openmoji", "noto", "emojione", "emojione-v1", "fxemoji", "noto-v1",
                              "streamline"), "lineart": True},
}


def load_default(size: int, only_val: bool = False, name: str = "default") -> PairedData:
    from training import emoji_data
    d = emoji_data.load(emoji_data.EmojiSpec(resolution=size, **EMOJI_DATA[name]), only_val=only_val)
    empty = np.zeros((0, size, size), np.uint8)
    return PairedData(d["photos"], d["sketches"], d["labels"], d["val"], [str(c) for c in d["class_names"]],
                      d.get("human_sketches", empty), d.get("human_sketch_photo", np.zeros(0, np.int64)),
                      styles=d.get("styles"), style_names=[str(s) for s in d.get("style_names", [])])


PHOTO_DATA = "photos"  # Tux Paint's photo stamps, each paired with its edge map
PHOTO_LINES_DATA = "photos-lines"  # the same photos, also paired with line drawings made from them


def load_photo_stamps(size: int, lines: bool = False) -> PairedData:
    """`photos`: the allow-listed Tux Paint photo stamps of the eight classes, each paired with its edge map (no line
    art exists for them: the curriculum's pen-stroke augmentation makes the hand-drawn look). Validation: about 15 %
    of each class's near-duplicate groups, held out whole (training/sources/tuxpaint.py). `lines` (`photos-lines`):
    each photo also gets a thin line drawing made from it at 4x the side (training/line_drawing.py) as its "human"
    sketch, which the curriculum then draws in place of the edge map as training goes on."""
    from training.edges import cutout_photo_edge_map
    from training.emoji_data import DEFAULT_CLASSES
    from training.sources import tuxpaint
    items = tuxpaint.photos(size)
    unknown = sorted({s.class_name for s, _, _ in items} - set(DEFAULT_CLASSES))
    if unknown:
        raise DatasetError(f"{tuxpaint.ALLOW_LIST} names classes {unknown}; expected some of {list(DEFAULT_CLASSES)}")
    held_out = tuxpaint.validation_groups([s for s, _, _ in items])
    data = PairedData(np.stack([rgb for _, rgb, _ in items]),
                      np.stack([cutout_photo_edge_map(rgb, a) for _, rgb, a in items]),
                      np.array([DEFAULT_CLASSES.index(s.class_name) for s, _, _ in items], np.int64),
                      np.array([s.group in held_out for s, _, _ in items], bool), list(DEFAULT_CLASSES))
    if not lines:
        return data
    from training.line_drawing import photo_line_drawing
    drawings = np.stack([photo_line_drawing(rgb, a, size) for _, rgb, a in tuxpaint.photos(4 * size)])
    return dataclasses.replace(data, sketches=drawings, sketch_photo=np.arange(len(drawings), dtype=np.int64))


def load_data(spec: str, size: int) -> PairedData:
    """'default' / 'default-v2' / 'default-v3' (offline emoji sets), 'photos' (Tux Paint's photo stamps), a Sketchy
    root, or a folder of class sub-folders of photos."""
    if spec in EMOJI_DATA:
        return load_default(size, name=spec)
    if spec in (PHOTO_DATA, PHOTO_LINES_DATA):
        return load_photo_stamps(size, lines=spec == PHOTO_LINES_DATA)
    if spec in STYLED_DATA:
        parts = {style: load_data(part, size) for style, part in STYLED_DATA[spec].items()}
        return merge_styles(parts, parts["art"].class_names)
    root = Path(spec).expanduser()
    if not root.exists():
        known = [*EMOJI_DATA, PHOTO_DATA, PHOTO_LINES_DATA, *STYLED_DATA]
        raise DatasetError(f"dataset path {root} does not exist; expected one of {known}, a "
                           f"Sketchy root or a folder of <class>/<photo> images")
    if not root.is_dir():
        raise DatasetError(f"dataset path {root} is not a folder")
    if (root / "photo").is_dir() and (root / "sketch").is_dir():
        return load_sketchy(root, size)
    return load_photo_folder(root, size)


def align_classes(data: PairedData, names: list[str]) -> PairedData:
    """`data` with its class ids renumbered to follow `names` (a checkpoint's classes), matched by name: a photo
    folder's classes come in alphabetical order, a checkpoint's in its own. Every class of the data must be one of
    `names` and every one of `names` must have data; otherwise a DatasetError names what is unknown or missing."""
    unknown = [c for c in data.class_names if c not in names]
    missing = [c for c in names if c not in data.class_names]
    if unknown or missing:
        parts = ([f"unknown to the checkpoint: {unknown}"] if unknown else []) + \
                ([f"missing from the data: {missing}"] if missing else [])
        raise DatasetError(f"the data's classes do not match the checkpoint's ({'; '.join(parts)}); expected one "
                           f"folder per class named exactly as the checkpoint's: {names}")
    if list(data.class_names) == list(names):
        return data
    new_id = np.array([names.index(c) for c in data.class_names], np.int64)
    return dataclasses.replace(data, labels=new_id[data.labels], class_names=list(names))


def merge_styles(parts: dict, class_names: list[str]) -> PairedData:
    """One data set of several styles (`{style: PairedData}`, in STYLES order): every part's classes aligned by
    name to `class_names`, labels made (style, class) rows, the art sources' style indices kept for the art part."""
    unknown = [s for s in parts if s not in STYLES]
    if unknown or not parts:
        raise ValueError(f"unknown styles {unknown or list(parts)}; expected some of {list(STYLES)}")
    names = [s for s in STYLES if s in parts]
    c = len(class_names)
    aligned = [align_classes(parts[s], class_names) for s in names]
    offsets = np.cumsum([0] + [len(d.labels) for d in aligned])
    style_of = np.concatenate([np.full(len(d.labels), STYLES.index(s), np.int64) for s, d in zip(names, aligned)])
    return PairedData(
        photos=np.concatenate([d.photos for d in aligned]),
        edges=np.concatenate([d.edges for d in aligned]),
        labels=label(np.concatenate([d.labels for d in aligned]), style_of, c),
        val=np.concatenate([d.val for d in aligned]),
        class_names=list(class_names),
        sketches=np.concatenate([d.sketches.reshape(-1, *aligned[0].photos.shape[1:3]) for d in aligned]),
        sketch_photo=np.concatenate([d.sketch_photo + off for d, off in zip(aligned, offsets)]),
        skipped=sum(d.skipped for d in aligned),
        output_styles=list(STYLES[: max(STYLES.index(s) for s in names) + 1]))


def load_validation(spec: str, size: int) -> PairedData:
    """The validation split of `spec` as its own dataset (every item is a validation item, in the same order).
    The default data renders only those items; Sketchy roots and photo folders are read whole and cut."""
    if spec in EMOJI_DATA:
        return load_default(size, only_val=True, name=spec)
    d = load_data(spec, size)
    keep = d.val
    own, photo_of = keep_pairs(keep, d.sketch_photo)
    return PairedData(d.photos[keep], d.edges[keep], d.labels[keep], d.val[keep], d.class_names,
                      d.sketches[own], photo_of, d.skipped,
                      None if d.styles is None else d.styles[keep], d.style_names)
