"""The inputs the export's checks run on (parity, FP16, OpenVINO, the precision gate, the int8 study): random contract
inputs, and the real validation sketches of the checkpoint's data when they can be read."""
from __future__ import annotations

import sys

import numpy as np

from triton_repo.runtimes import random_inputs


def check_inputs(g, meta: dict, n_real: int = 32, seed: int = 0) -> dict[str, tuple[np.ndarray, ...]]:
    """Inputs for the checks: random sketches, real validation sketches of the checkpoint's data when available."""
    rng = np.random.default_rng(seed)
    s, z, c = g.cfg.resolution, g.cfg.noise_dim, g.cfg.num_classes
    out = {"random": random_inputs(8, s, z, c, rng)}
    try:
        from training.data import load_validation
        from training.evaluate import validation_sketches
        data = load_validation(meta.get("data", "default"), s)  # renders/reads only the validation items
        idx, sketches = validation_sketches(data)
        idx, sketches = idx[:n_real], sketches[:n_real]
        out["real"] = (sketches, data.labels[idx].astype(np.int32)[:, None],
                       rng.standard_normal((len(idx), z)).astype(np.float32))
    except (OSError, ValueError) as e:
        print(f"warning: real validation sketches unavailable ({e}); checking on random inputs only",
              file=sys.stderr)
    return out
