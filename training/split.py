"""The train/validation split: by object (a hash of its key), so every view of one object lands on the same side."""
from __future__ import annotations

import hashlib

import numpy as np


def is_validation(key: str, fraction: float) -> bool:
    """True for about `fraction` of keys; the same key is always on the same side, whatever else is in the data."""
    return hashlib.sha256(key.encode()).digest()[0] / 256.0 < fraction


def keep_pairs(keep: np.ndarray, sketch_photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cutting photos down to the mask `keep`: which human sketches stay (those of kept photos) and the index of
    their photo among the kept ones."""
    own = keep[sketch_photo]
    return own, (np.cumsum(keep) - 1)[sketch_photo[own]]
