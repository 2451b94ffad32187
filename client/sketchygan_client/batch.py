"""`sketchygan-client batch`: a folder or a CSV manifest of sketches -> images and receipts, resumable.

The manifest is a CSV whose header names at least `sketch,class` (sketch paths relative to the CSV), with optional
`seed` (the first seed, default 0) and `style` columns; `--seeds K` makes K images per row (seeds seed..seed+K-1).
Images are sent in requests of up to the model's `max_batch_size`, a few in flight, each with the client's own
deadline. Every image is written to OUT_DIR with one JSON line in OUT_DIR/receipts.jsonl; an image whose file and
receipt are both there is skipped when the job runs again, so an interrupted job resumes. A bad row (unknown class
or style, unreadable image) is reported with its line number and the rest goes on.
"""
from __future__ import annotations

import csv
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from sketchygan_client.client import SketchClient
from sketchygan_client.errors import InvalidInput, SketchClientError
from sketchygan_client.images import to_image, to_sketch

RECEIPTS = "receipts.jsonl"
IN_FLIGHT = 4  # requests sent at once by default: enough to fill the server's dynamic batches
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class Item:
    """One image to make: where its sketch comes from (a manifest line, or 0 in the folder form) and where it goes."""

    line: int
    sketch: Path
    cls: str
    seed: int
    style: str | None
    file: str  # output file name inside OUT_DIR


@dataclass
class Outcome:
    written: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _out_name(sketch: Path, cls: str, style: str | None, seed: int) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in f"{sketch.stem}-{cls}")
    return f"{safe}{'-' + style if style else ''}-seed{seed}.png"


def read_manifest(path: Path, seeds: int, style: str | None) -> tuple[list[Item], list[str]]:
    """(the items of a CSV manifest, one error text per bad row). `style` is the default for rows without one."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(f"manifest {path} cannot be read: {e}") from None
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in ("sketch", "class") if c not in header]
    if missing:
        raise InvalidInput(f"manifest {path}: the header must name at least sketch,class (optional seed, style); "
                           f"it has {header or 'no header'}, missing {missing}")
    items, errors = [], []
    for n, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        if not row.get("sketch") or not row.get("class"):
            errors.append(f"{path}:{n}: sketch and class are required, got {row.get('sketch')!r}, {row.get('class')!r}")
            continue
        try:
            first = int(row["seed"]) if row.get("seed") else 0
            if first < 0:
                raise ValueError
        except ValueError:
            errors.append(f"{path}:{n}: seed must be a non-negative integer, got {row['seed']!r}")
            continue
        sketch = path.parent / row["sketch"]
        row_style = row.get("style") or style
        items += [Item(n, sketch, row["class"], s, row_style, _out_name(sketch, row["class"], row_style, s))
                  for s in range(first, first + seeds)]
    return items, errors


def read_folder(folder: Path, cls: str, seeds: int, style: str | None) -> list[Item]:
    """Every PNG/JPEG directly in `folder` (sorted by name) in class `cls`, seeds 0..seeds-1."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InvalidInput(f"{folder} holds no .png/.jpg/.jpeg sketches")
    return [Item(0, f, cls, s, style, _out_name(f, cls, style, s)) for f in files for s in range(seeds)]


def done_files(out_dir: Path) -> set[str]:
    """Files with a receipt line that still exist: what a run again skips."""
    path = out_dir / RECEIPTS
    if not path.is_file():
        return set()
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            names.add(json.loads(line)["file"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by an interruption: its image is made again
    return {n for n in names if (out_dir / n).is_file()}


class _Progress:
    """One status line on a terminal (images, images/s, ETA); nothing when the stream is not a terminal."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.stream, self.done, self.t0 = total, stream, 0, time.perf_counter()
        self.on = total > 0 and stream.isatty()

    def add(self, n: int) -> None:
        self.done += n
        if self.on:
            rate = self.done / max(1e-9, time.perf_counter() - self.t0)
            eta = (self.total - self.done) / rate if rate else 0.0
            self.stream.write(f"\r{self.done}/{self.total} images, {rate:.1f} images/s, ETA {eta:.0f} s ")
            self.stream.flush()

    def close(self) -> None:
        if self.on:
            self.stream.write("\n")


def _label(item: Item, source: Path) -> str:
    return f"{source}:{item.line}" if item.line else str(item.sketch)


def run_batch(client: SketchClient, items: list[Item], out_dir: Path, source: Path, in_flight: int = IN_FLIGHT,
              stream: TextIO = sys.stderr) -> Outcome:
    """Make every item not already done: checked and read first (a bad row is an error, the rest goes on), then
    sent in requests of up to max_batch_size (one style per request), `in_flight` at a time."""
    t0 = time.perf_counter()
    out = Outcome()
    done = done_files(out_dir)
    info = client.info
    todo, seen, bad = [], {}, set()
    sketches: dict[Path, np.ndarray] = {}
    for it in items:
        if (it.line, it.sketch) in bad:
            continue  # the row's other seeds: reported once
        if it.file in seen:
            out.errors.append(f"{_label(it, source)}: makes {it.file}, as line {seen[it.file]} does (a repeated row)")
            continue
        seen[it.file] = it.line
        if it.file in done:
            out.skipped += 1
            continue
        try:
            info.wire_class_id(it.cls, it.style)  # an unknown class or style: this row's error
            if it.sketch not in sketches:
                sketches[it.sketch] = to_sketch(it.sketch, info.resolution)
        except InvalidInput as e:
            out.errors.append(f"{_label(it, source)}: {e}")
            bad.add((it.line, it.sketch))
            continue
        todo.append(it)
    step = max(1, info.max_batch_size)
    chunks = []
    for style in dict.fromkeys(it.style for it in todo):
        same = [it for it in todo if it.style == style]
        chunks += [same[a:a + step] for a in range(0, len(same), step)]
    progress = _Progress(len(todo), stream)
    receipts = (out_dir / RECEIPTS).open("a+b")  # bytes: the last one is read without decoding a cut character
    if receipts.tell() > 0:
        receipts.seek(-1, 2)
        if receipts.read(1) != b"\n":  # a line cut short by an interruption: the next receipt starts on its own line
            receipts.write(b"\n")

    def send(chunk: list[Item]):
        try:
            return chunk, client.generate_batch_explained([sketches[i.sketch] for i in chunk], [i.cls for i in chunk],
                                                          [i.seed for i in chunk], style=chunk[0].style), None
        except SketchClientError as e:
            return chunk, None, e

    try:
        with ThreadPoolExecutor(max(1, in_flight)) as pool:
            for chunk, answer, err in pool.map(send, chunks):
                if err is not None:
                    out.errors += [f"{_label(i, source)}: {type(err).__name__}: {err}" for i in chunk]
                    continue
                images, rcpts = answer
                for it, img, rc in zip(chunk, images, rcpts):
                    tmp = out_dir / f".{it.file}.part"
                    to_image(img).save(tmp, format="PNG")
                    tmp.replace(out_dir / it.file)
                    row = {k: v for k, v in rc.as_dict().items() if k != "class_confidence"}  # not asked for
                    receipts.write((json.dumps({"file": it.file, "sketch": str(it.sketch), **row}) + "\n").encode())
                    out.written += 1
                receipts.flush()
                progress.add(len(chunk))
    finally:
        receipts.close()
        progress.close()
    out.seconds = time.perf_counter() - t0
    return out
