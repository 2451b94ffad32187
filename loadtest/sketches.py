"""A small, deterministic set of sketch-like test drawings (no data files, no torch)."""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw


def sketch_set(n: int = 16, size: int = 64, seed: int = 0) -> list[np.ndarray]:
    """Outlines of circles, polygons and stars with wobbly pen strokes, black on white, uint8 [size, size]."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        im = Image.new("L", (size, size), 255)
        d = ImageDraw.Draw(im)
        cx, cy, r = size / 2 + rng.uniform(-4, 4), size / 2 + rng.uniform(-4, 4), size * rng.uniform(0.25, 0.4)
        k = [0, 3, 4, 5, 10][i % 5]
        if k == 0:
            pts = [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 30)]
        else:
            pts = []
            for j in range(k):
                rr = r if (k != 10 or j % 2 == 0) else r * 0.45
                a = 2 * math.pi * j / k + rng.uniform(-0.1, 0.1)
                pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
            pts.append(pts[0])
        pts = [(x + rng.normal(0, 0.7), y + rng.normal(0, 0.7)) for x, y in pts]
        d.line(pts, fill=0, width=1)
        out.append(np.asarray(im))
    return out
