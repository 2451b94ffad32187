"""Random training batches from a `PairedData`: joint flip/affine, colour jitter, and the edge-map -> sketch
curriculum, deterministic in (seed, step) so that a resumed run sees the batches an uninterrupted one would."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from training.data import DatasetError, PairedData
from training.edges import HumanStrokes, SketchAugment


@dataclass(frozen=True)
class Batch:
    sketch: np.ndarray  # [B,S,S] uint8
    photo: np.ndarray  # [B,S,S,3] uint8
    label: np.ndarray  # [B] int64


class BatchSampler:
    """Random training batches: joint flip/affine, colour jitter, and the edge-map -> sketch curriculum.

    p(t) = start + ramp * min(1, t/T) is the probability of a human sketch (when the photo has one) instead of
    its edge map; for photos without human sketches it is the probability of strong sketch augmentation. With
    `strokes`, any sketch is also redrawn pen-like with probability p(t).
    """

    def __init__(self, data: PairedData, batch_size: int, seed: int, start: float = 0.2, ramp: float = 0.6,
                 augment: SketchAugment = SketchAugment(), strokes: HumanStrokes | None = None) -> None:
        self.data, self.batch_size, self.start, self.ramp, self.augment = data, batch_size, start, ramp, augment
        self.strokes = strokes
        self.train_idx = data.split("train")
        if len(self.train_idx) == 0:
            raise DatasetError("the training split is empty")
        self.seed = seed
        self.p = None  # several output styles: each style gets an equal share of every batch's draws, however
        if data.output_styles:  # few photos it has next to the art
            style = data.labels[self.train_idx] // len(data.class_names)
            counts = np.bincount(style)
            self.p = 1.0 / (counts[style] * (counts > 0).sum())

    def batch(self, step: int, total_steps: int) -> Batch:
        """Deterministic in (seed, step): a resumed run sees exactly the batches an uninterrupted one would."""
        rng = np.random.default_rng([self.seed, step])
        p = self.start + self.ramp * min(1.0, step / max(1, total_steps))
        idx = rng.choice(self.train_idx, self.batch_size, replace=len(self.train_idx) < self.batch_size or
                         self.p is not None, p=self.p)
        sketches, photos = [], []
        for i in idx:
            use_curriculum = rng.random() < p
            human = self.data.sketch_of(i, rng) if use_curriculum else None
            sk = human if human is not None else self.data.edges[i]
            photo = self.data.photos[i]
            if rng.random() < 0.5:
                sk, photo = sk[:, ::-1], photo[:, ::-1]
            sk, photo = _joint_affine(sk, photo, rng)
            if self.strokes is not None and rng.random() < p:
                sk = self.strokes(np.ascontiguousarray(sk), rng)
            strength = 0.3 if human is not None else (1.0 if use_curriculum else 0.3)
            sketches.append(self.augment(np.ascontiguousarray(sk), rng, strength))
            photos.append(_colour_jitter(photo, rng))
        return Batch(np.stack(sketches), np.stack(photos), self.data.labels[idx])


def _joint_affine(sk: np.ndarray, photo: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    s = sk.shape[0]
    sc = rng.uniform(0.9, 1.05)
    tx, ty = rng.uniform(-0.05, 0.05, 2) * s
    m = np.array([[sc, 0, (1 - sc) * s / 2 + tx], [0, sc, (1 - sc) * s / 2 + ty]], np.float32)
    sk2 = cv2.warpAffine(np.ascontiguousarray(sk), m, (s, s), flags=cv2.INTER_NEAREST, borderValue=255)
    ph2 = cv2.warpAffine(np.ascontiguousarray(photo), m, (s, s), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    return sk2, ph2


def _colour_jitter(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Contrast in [0.8, 1.2] as the reference, plus a small brightness shift."""
    x = photo.astype(np.float32)
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.8, 1.2) + mean + rng.uniform(-10, 10)
    return np.clip(x, 0, 255).astype(np.uint8)
