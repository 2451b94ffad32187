"""Shared fixtures: a tiny dataset in the real Sketchy layout, drawn with numpy + Pillow in a fraction of a second."""
from __future__ import annotations

import contextlib
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star")


@contextlib.contextmanager
def mapped_by_child(path: Path):
    """A real child process that maps `path` (a whole file) for the block: what the shared-memory cleanup must keep."""
    code = ("import mmap, sys; f = open(sys.argv[1], 'r+b'); m = mmap.mmap(f.fileno(), 0); "
            "print('mapped', flush=True); sys.stdin.read()")
    child = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "mapped"
        yield child
    finally:
        child.stdin.close()
        child.wait(10)


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "star":
        pts = []
        for k in range(10):
            rr = r if k % 2 == 0 else r * 0.45
            a = math.pi / 2 + k * math.pi / 5
            pts.append((cx + rr * math.cos(a), cy - rr * math.sin(a)))
        return pts
    return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 40, endpoint=False)]


def make_sketchy(root: Path, size: int = 64, photos_per_class: int = 6, sketches_per_photo: int = 2,
                 seed: int = 0) -> Path:
    """Shaded shapes on noisy tinted backgrounds (photos) and jittered outlines (sketches), Sketchy layout."""
    rng = np.random.default_rng(seed)
    colours = {"circle": (220, 40, 40), "square": (40, 160, 40), "triangle": (40, 60, 220), "star": (230, 200, 30)}
    test_lines, stats = [], ["Category,ImageNetID,SketchID,Error?,Context?,Ambiguous?,WrongPose?"]
    for shape in SHAPES:
        pdir = root / "photo" / "tx_000000000000" / shape
        sdir = root / "sketch" / "tx_000000000000" / shape
        pdir.mkdir(parents=True)
        sdir.mkdir(parents=True)
        for p in range(photos_per_class):
            pid = f"n{SHAPES.index(shape):02d}_{p}"
            bg = rng.integers(150, 255, 3)
            arr = np.clip(bg + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
            img = Image.fromarray(arr)
            cx, cy = size / 2 + rng.uniform(-4, 4), size / 2 + rng.uniform(-4, 4)
            r = size * rng.uniform(0.25, 0.35)
            ImageDraw.Draw(img).polygon(_polygon(shape, cx, cy, r), fill=colours[shape])
            img.save(pdir / f"{pid}.jpg", quality=95)
            if p == photos_per_class - 1:
                test_lines.append(f"{shape}/{pid}.jpg")
            for k in range(1, sketches_per_photo + 1):
                sk = Image.new("L", (size, size), 255)
                pts = [(x + rng.normal(0, 1.0), y + rng.normal(0, 1.0))
                       for x, y in _polygon(shape, cx + rng.normal(0, 1), cy + rng.normal(0, 1), r)]
                ImageDraw.Draw(sk).line(pts + [pts[0]], fill=0, width=1)
                sk.save(sdir / f"{pid}-{k}.png")
                stats.append(f"{shape},{pid},{k},0,0,0,0")
    info = root / "info"
    info.mkdir()
    (info / "testset.txt").write_text("\n".join(test_lines) + "\n")
    (info / "stats.csv").write_text("\n".join(stats) + "\n")
    return root


@pytest.fixture(scope="session")
def sketchy_root(tmp_path_factory) -> Path:
    return make_sketchy(tmp_path_factory.mktemp("sketchy"))


@pytest.fixture(scope="session")
def tiny_data(sketchy_root):
    from training.data import load_data
    return load_data(str(sketchy_root), 32)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep classifier/emoji caches out of the user's home."""
    monkeypatch.setenv("SKETCHYGAN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, sketchy_root, tiny_data) -> Path:
    """A briefly trained tiny-preset generator checkpoint on the fixture data."""
    import dataclasses

    from training.config import preset
    from training.train import RunOptions, Trainer
    out = tmp_path_factory.mktemp("tinyrun")
    m, t = preset("tiny")
    Trainer(m, dataclasses.replace(t, steps=10), tiny_data,
            RunOptions(out=out, preset="tiny", data_spec=str(sketchy_root), progress=False)).run()
    return out / "generator.safetensors"


@pytest.fixture(scope="session")
def tiny_scorer(tmp_path_factory, tiny_data) -> Path:
    """A briefly trained narrow class-confidence scorer on the fixture data (the tiny generator's classes)."""
    from training.scorer import ScorerConfig, save_scorer, train_scorer
    model, meta = train_scorer(tiny_data, ScorerConfig(steps=30, batch=16, width=4))
    path = tmp_path_factory.mktemp("scorer") / "scorer.safetensors"
    save_scorer(path, model, meta)
    return path


@pytest.fixture(scope="session")
def exported(tmp_path_factory, tiny_checkpoint, tiny_scorer):
    """Three targets exported from the tiny checkpoint, the CPU repository with the tiny scorer beside the generator:
    (report, cpu repo, gpu parent). The CPU folder runs onnxruntime, the reference the export checks against;
    tests/e2e/test_openvino.py serves OpenVINO."""
    from export.pipeline import run_export
    from triton_repo.serving_config import Limits, ServingConfig
    base = tmp_path_factory.mktemp("export")
    report = run_export(tiny_checkpoint, base / "repo", base / "gpu", ["cpu", "tensorrt", "onnxruntime-trt"],
                        ServingConfig(max_batch_size=16, preferred_batch_sizes=(4, 8), limits=Limits("onnxruntime")),
                        "tiny", 35.0, tiny_scorer)
    return report, base / "repo", base / "gpu"


@pytest.fixture(scope="session")
def tiny_upsampler(tmp_path_factory, sketchy_root) -> Path:
    """A briefly trained narrow 2x upsampler on the fixture images (32 -> 64 px)."""
    from training.upsampler import UpsamplerConfig
    from training.upsampler_train import UpsamplerTrainConfig, load_pairs, train_upsampler
    path = tmp_path_factory.mktemp("upsampler") / "upsampler.safetensors"
    cfg = UpsamplerTrainConfig(data=str(sketchy_root), low=32, steps=60, batch_size=8, lr=3e-3)
    train_upsampler(cfg, UpsamplerConfig(width=8, depth=2), path, log_every=1000, pairs=load_pairs(cfg.data, 32, 2))
    return path


@pytest.fixture(scope="session")
def upscaled(tmp_path_factory, tiny_checkpoint, tiny_scorer, tiny_upsampler):
    """The tiny checkpoint exported with the tiny upsampler fused in (32 px sketches, 64 px images) and the scorer
    beside it: (report, cpu repo)."""
    from export.pipeline import run_export
    from triton_repo.serving_config import Limits, ServingConfig
    base = tmp_path_factory.mktemp("export-up")
    report = run_export(tiny_checkpoint, base / "repo", base / "gpu", ["cpu", "tensorrt"],
                        ServingConfig(max_batch_size=16, preferred_batch_sizes=(4, 8), limits=Limits("onnxruntime")),
                        "tiny", 35.0, tiny_scorer, tiny_upsampler)
    return report, base / "repo"
