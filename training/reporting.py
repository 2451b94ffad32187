"""What a training run writes besides checkpoints: the loss CSV (resumable), the loss plot and sample grids.
Shared by the SketchyGAN trainer, the pix2pix baseline and `python -m training samples`."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import torch

from training.data import PairedData
from training.generator import Generator

LOSS_FIELDS = ["step", "d_gan", "d_ac", "g_gan", "g_ac", "l1", "perceptual", "diversity", "lr_mult", "img_per_s",
               "cross", "div_photo", "div_art", "div_cross"]


def sample_grid(g: Generator, data: PairedData, path: Path, n_rows: int = 8, seeds: int = 4,
                sketches: np.ndarray | None = None, idx: list[int] | None = None,
                cond_rows: np.ndarray | None = None) -> None:
    """PNG grid, one validation item per row: sketch | generated with `seeds` noise seeds | real photo.

    Rows default to the first validation item of each class with its edge map; pass `idx` and `sketches`
    (aligned) to show other inputs, e.g. hand-drawn-looking validation sketches; `cond_rows`: the conditioning rows to
    draw with (another output style's, training/styles.py), default the items' own labels."""
    from PIL import Image
    if idx is None:
        pool = data.split("val") if len(data.split("val")) else data.split("train")
        first_of_class: dict[int, int] = {}
        for i in pool:  # one row per class first, then further items
            first_of_class.setdefault(int(data.labels[i]), int(i))
        rows = list(first_of_class.values())
        idx = (rows + [int(i) for i in pool if int(i) not in rows])[:n_rows]
        sketches = data.edges[idx]
    sketch = torch.from_numpy(sketches).float().unsqueeze(1) / 255.0
    y = torch.from_numpy(data.labels[idx] if cond_rows is None else np.asarray(cond_rows, np.int64))
    cols = [np.repeat(sketches[..., None], 3, axis=3)]
    g.eval()
    with torch.no_grad():
        for s in range(seeds):
            z = torch.randn(len(idx), g.cfg.noise_dim, generator=torch.Generator().manual_seed(s))
            out = ((g(sketch, y, z) + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
            cols.append(out)
    cols.append(data.photos[idx])
    grid = np.concatenate([np.concatenate([c[r] for c in cols], axis=1) for r in range(len(idx))], axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(path)


def plot_losses(csv_path: Path, png_path: Path) -> None:
    """losses.png from the CSV: GAN/AC terms, reconstruction terms, diversity."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = list(csv.DictReader(csv_path.open()))
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, keys in zip(axes, (["d_gan", "g_gan", "d_ac", "g_ac"], ["l1", "perceptual"], ["diversity"])):
        for k in keys:
            ax.plot(steps, [float(r[k]) for r in rows], label=k)
        if keys[0] == "d_gan" and all(r.get("cross") for r in rows):  # runs with w_cross_style > 0
            ax.plot(steps, [float(r["cross"]) for r in rows], label="cross")
        ax.set_xlabel("step")
        ax.legend()
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)


def append_loss_row(path: Path, row: dict[str, float]) -> None:
    """Add one row of losses to the run's CSV (header first)."""
    new = not path.exists()
    with path.open("a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=LOSS_FIELDS)
        if new:
            w.writeheader()
        w.writerow({k: row.get(k, "") for k in LOSS_FIELDS})


def truncate_loss_rows(path: Path, step: int) -> None:
    """On resume, drop rows logged after the checkpoint so the CSV matches an uninterrupted run."""
    if not path.exists():
        return
    rows = [r for r in csv.DictReader(path.open()) if int(r["step"]) <= step]
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=LOSS_FIELDS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
