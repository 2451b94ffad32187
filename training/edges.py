"""Edge maps from photos and sketch augmentation (the bridge between edge maps and hand-drawn sketches).

All images are uint8 numpy arrays; sketches are grayscale, black ink (0) on white paper (255).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def binarize(gray: np.ndarray, threshold: int = 230) -> np.ndarray:
    """Any darkening below `threshold` becomes ink: keeps thin strokes alive through area downsampling."""
    return np.where(gray < threshold, 0, 255).astype(np.uint8)


def resize_sketch(gray: np.ndarray, size: int) -> np.ndarray:
    return binarize(cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA))


def alpha_edge_map(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Edge map of a cut-out object: Canny of the colours OR-ed with the silhouette outline (closed even for
    white or yellow objects on white paper)."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(cv2.GaussianBlur(gray, (3, 3), 0), 50, 150, L2gradient=True)
    mask = (alpha > 127).astype(np.uint8)
    outline = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((2, 2), np.uint8))
    ink = (edges > 0) | (outline > 0)
    return np.where(ink, 0, 255).astype(np.uint8)


def photo_edge_map(rgb: np.ndarray, min_fragment: int = 8) -> np.ndarray:
    """Edge map of a natural photo: bilateral smoothing, median-based auto Canny, small fragments dropped."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    smooth = cv2.bilateralFilter(gray, 5, 50, 50)
    med = float(np.median(smooth))
    edges = cv2.Canny(smooth, int(max(0, 0.66 * med)), int(min(255, 1.33 * med)), L2gradient=True)
    n, lab, stats, _ = cv2.connectedComponentsWithStats((edges > 0).astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_fragment
    return np.where(keep[lab], 0, 255).astype(np.uint8)


def cutout_photo_edge_map(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Edge map of a photo cut out with alpha (on white): the photo's auto-Canny edges, which skip fur and grain
    texture, OR-ed with the silhouette outline."""
    mask = (alpha > 127).astype(np.uint8)
    outline = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((2, 2), np.uint8))
    ink = (photo_edge_map(rgb) < 128) | (outline > 0)
    return np.where(ink, 0, 255).astype(np.uint8)


def thin(ink: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a 0/1 ink mask to 1-px strokes (what a pen drawing of an edge map looks like)."""
    img = np.pad((ink > 0).astype(np.uint8), 1)
    while True:
        changed = False
        for step in (0, 1):
            p = [np.roll(np.roll(img, -dy, 0), -dx, 1) for dy, dx in
                 ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))]  # P2..P9
            b = sum(p)
            a = sum(((p[i] == 0) & (p[(i + 1) % 8] == 1)).astype(np.uint8) for i in range(8))
            if step == 0:
                c = (p[0] * p[2] * p[4] == 0) & (p[2] * p[4] * p[6] == 0)
            else:
                c = (p[0] * p[2] * p[6] == 0) & (p[0] * p[4] * p[6] == 0)
            kill = (img == 1) & (b >= 2) & (b <= 6) & (a == 1) & c
            if kill.any():
                img[kill] = 0
                changed = True
        if not changed:
            return img[1:-1, 1:-1]


@dataclass(frozen=True)
class HumanStrokes:
    """Make any sketch look drawn with a pen: strokes thinned to 1 px and redrawn 1-3 px wide, a sparse version
    (the outline plus few interior strokes), and small gaps. Applied to edge maps and line art alike."""

    p_thin: float = 0.7
    p_sparse: float = 0.3
    keep_interior: float = 0.35  # fraction of interior strokes a sparse sketch keeps
    p_gaps: float = 0.4
    max_gaps: int = 6

    def __call__(self, sketch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        ink = (sketch < 128).astype(np.uint8)
        if not ink.any():
            return sketch
        if rng.random() < self.p_sparse:
            n, lab = cv2.connectedComponents(ink, connectivity=8)
            if n > 2:
                sizes = np.bincount(lab.ravel(), minlength=n)
                sizes[0] = 0
                keep = rng.random(n) < self.keep_interior
                keep[int(np.argmax(sizes))] = True  # the biggest stroke: nearly always the outline
                keep[0] = False
                ink = keep[lab].astype(np.uint8)
        if rng.random() < self.p_thin:
            ink = thin(ink)
            width = int(rng.choice([1, 1, 2, 3]))
            if width > 1:
                ink = cv2.dilate(ink, np.ones((width, width), np.uint8))
        if rng.random() < self.p_gaps:
            ys, xs = np.nonzero(ink)
            for j in rng.choice(len(ys), min(len(ys), int(rng.integers(1, self.max_gaps + 1))), replace=False):
                cv2.circle(ink, (int(xs[j]), int(ys[j])), int(rng.integers(1, 3)), 0, -1)
        return np.where(ink > 0, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class SketchAugment:
    """Make edge maps look hand-drawn: thicker/thinner strokes, dropped strokes, wobble, small shift/scale."""

    p_thicken: float = 0.3
    drop_fraction: float = 0.25  # max fraction of connected strokes dropped
    jitter_px: float = 1.2  # amplitude of the smooth displacement field
    max_shift: float = 0.04  # fraction of the side
    max_scale: float = 0.06

    def __call__(self, sketch: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
        s = sketch.shape[0]
        ink = (sketch < 128).astype(np.uint8)
        if self.drop_fraction > 0 and strength > 0:
            n, lab = cv2.connectedComponents(ink, connectivity=8)
            if n > 2:
                drop = rng.random(n) < self.drop_fraction * strength * rng.random()
                drop[0] = False
                if not drop[1:].all():
                    ink[drop[lab]] = 0
        if self.jitter_px > 0 and strength > 0:
            k = 5
            d = rng.normal(0.0, self.jitter_px * strength, (2, k, k)).astype(np.float32)
            dx = cv2.resize(d[0], (s, s), interpolation=cv2.INTER_CUBIC)
            dy = cv2.resize(d[1], (s, s), interpolation=cv2.INTER_CUBIC)
            gx, gy = np.meshgrid(np.arange(s, dtype=np.float32), np.arange(s, dtype=np.float32))
            ink = cv2.remap(ink, gx + dx, gy + dy, cv2.INTER_NEAREST, borderValue=0)
        if strength > 0:
            sc = 1.0 + rng.uniform(-self.max_scale, self.max_scale) * strength
            tx, ty = rng.uniform(-self.max_shift, self.max_shift, 2) * s * strength
            m = np.array([[sc, 0, (1 - sc) * s / 2 + tx], [0, sc, (1 - sc) * s / 2 + ty]], np.float32)
            ink = cv2.warpAffine(ink, m, (s, s), flags=cv2.INTER_NEAREST, borderValue=0)
        if rng.random() < self.p_thicken * strength:
            ink = cv2.dilate(ink, np.ones((2, 2), np.uint8))
        return np.where(ink > 0, 0, 255).astype(np.uint8)
