"""Thin line drawings of cut-out photographs: what a person draws with a pen, made from a photo that has none.

The photo style's training sketches were edge maps (auto-Canny at 64 px, jagged, broken where texture is); the
line drawings people send are a closed outline plus a few long interior lines, 1-2 px wide. This extractor draws
that from the photo at 4x the training side: the silhouette's outer contour (from the alpha mask), plus interior
lines where the smoothed photo's gradient is among its strongest and the line is long, then area-downsampled to the
training side (thin strokes kept by `resize_sketch`) and thinned to 1 px. `python -m training line-drawings` measures
which of the two is closer to real line drawings (docs/model.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from training.edges import resize_sketch, thin


@dataclass(frozen=True)
class LineStyle:
    """How much interior a line drawing keeps: the strongest `interior_share` of the object's gradients, in lines
    at least `min_length` of the side long."""

    interior_share: float = 0.05
    min_length: float = 0.2


def photo_line_drawing(rgb: np.ndarray, alpha: np.ndarray, side: int, style: LineStyle = LineStyle()) -> np.ndarray:
    """[side, side] uint8 line drawing (ink 0 on 255) of a cut-out photo given at a larger square size."""
    if rgb.shape[:2] != alpha.shape or rgb.shape[0] != rgb.shape[1] or rgb.shape[0] < side:
        raise ValueError(f"expected a square rgb and alpha of one size >= {side}, got {rgb.shape} and {alpha.shape}")
    big = rgb.shape[0]
    mask = (alpha > 127).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    ink = np.zeros_like(mask)
    cv2.drawContours(ink, contours, -1, 1, max(1, big // 96))
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    smooth = cv2.GaussianBlur(cv2.bilateralFilter(gray, 9, 60, 9), (0, 0), big / 160)
    grad = cv2.magnitude(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1))
    inside = cv2.erode(mask, np.ones((5, 5), np.uint8), iterations=max(1, big // 64))  # not the outline again
    values = grad[inside > 0]
    if len(values):
        lines = thin(((grad > np.quantile(values, 1 - style.interior_share)) & (inside > 0)).astype(np.uint8))
        n, lab, stats, _ = cv2.connectedComponentsWithStats(lines, connectivity=8)
        keep = np.zeros(n, bool)
        keep[1:] = np.maximum(stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT]) >= style.min_length * big
        ink |= keep[lab].astype(np.uint8)
    small = resize_sketch(np.where(ink > 0, 0, 255).astype(np.uint8), side)
    return np.where(thin((small < 128).astype(np.uint8)) > 0, 0, 255).astype(np.uint8)


def pen_redrawn(sketch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A sketch as the thin-stroke evaluation set draws one: thinned to 1 px, then half of them 2 px wide — so that
    stroke width is no cue to a judge of what the lines are."""
    ink = thin((sketch < 128).astype(np.uint8))
    if rng.random() < 0.5:
        ink = cv2.dilate(ink, np.ones((2, 2), np.uint8))
    return np.where(ink > 0, 0, 255).astype(np.uint8)


def line_likeness(size: int = 64, steps: int = 800, seed: int = 0) -> dict[str, float]:
    """Which photo sketches look more like real line drawings: a judge learns to tell the art data's line drawings
    from the edge maps of the same emoji (both pen-redrawn, training split), and is asked about every photo's edge
    map and its line drawing. Also reports the judge's own top-1 on the held-out emoji."""
    import torch

    from training.classifier import PhotoClassifier, _photos, fit
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
            d = PairedData(as_rgb(drawn_k), np.stack(drawn_k), np.zeros(len(drawn_k), np.int64),
                           np.zeros(len(drawn_k), bool), ["x"])
            with torch.no_grad():
                shares.append(float((judge(_photos(d, np.arange(len(drawn_k)))).argmax(1) == 1).float().mean()))
        return round(float(np.mean(shares)), 4)

    val = pairs.split("val")
    with torch.no_grad():
        top1 = float((judge(_photos(pairs, val)).argmax(1) == torch.from_numpy(label[val])).float().mean())
    return {"judge_top1_held_out_emoji": round(top1, 4), "n_held_out": int(len(val)),
            "photo_edge_maps_called_line_drawings": called_lines(photos.edges),
            "photo_line_drawings_called_line_drawings": called_lines(photos.sketches),
            "n_photos": int(len(photos.edges))}
