"""Which photo sketches look like real line drawings (`python -m training line-drawings`): a judge of line drawings
against edge maps, learned on the art data, asked about the photos' edge maps and their line drawings."""
from __future__ import annotations

import numpy as np

from training.line_drawing import pen_redrawn


def line_likeness(size: int = 64, steps: int = 800, seed: int = 0) -> dict[str, float]:
    """Which photo sketches look more like real line drawings: a judge learns to tell the art data's line drawings
    from the edge maps of the same emoji (both pen-redrawn, training split), and is asked about every photo's edge
    map and its line drawing. Also reports the judge's own top-1 on the held-out emoji."""
    import torch

    from training.classifier import PhotoClassifier, _photos, accuracy, fit
    from training.data import PairedData, load_data, load_photo_stamps
    rng = np.random.default_rng(seed)
    art = load_data("default-v3", size)
    lined = art.sketch_photo
    drawn = [pen_redrawn(s, rng) for s in art.sketches] + [pen_redrawn(art.edges[i], rng) for i in lined]
    label = np.r_[np.ones(len(lined)), np.zeros(len(lined))].astype(np.int64)  # 1: a line drawing
    held = np.r_[art.val[lined], art.val[lined]]
    as_rgb = lambda sk: np.repeat(np.stack(sk)[..., None], 3, axis=3)  # noqa: E731
    pairs = PairedData(as_rgb(drawn), np.stack(drawn), label, held, ["edge map", "line drawing"])
    judge = fit(PhotoClassifier(2), pairs, pairs.split("train"), label, steps, 64, seed)
    photos = load_photo_stamps(size, lines=True)

    def called_lines(sketches: np.ndarray) -> float:
        """Share called line drawings, averaged over four pen redrawings (the same four draws for every set)."""
        shares = []
        for k in range(4):
            r = np.random.default_rng([seed, k])
            drawn_k = [pen_redrawn(s, r) for s in sketches]
            d = PairedData(as_rgb(drawn_k), np.stack(drawn_k), np.ones(len(drawn_k), np.int64),
                           np.zeros(len(drawn_k), bool), ["x"])
            shares.append(accuracy(judge, _photos(d, np.arange(len(drawn_k))), torch.from_numpy(d.labels)))
        return round(float(np.mean(shares)), 4)

    val = pairs.split("val")
    top1 = accuracy(judge, _photos(pairs, val), torch.from_numpy(label[val]))
    return {"judge_top1_held_out_emoji": round(top1, 4), "n_held_out": int(len(val)),
            "photo_edge_maps_called_line_drawings": called_lines(photos.edges),
            "photo_line_drawings_called_line_drawings": called_lines(photos.sketches),
            "n_photos": int(len(photos.edges))}
