"""Run an exported model.onnx with ONNX Runtime, and the export's error type. Torch-free on purpose: the load
tester and the checks that only read ONNX files use it without the training stack."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from export.contract import CLASS_ID, IMAGE, NOISE, SKETCH


class ExportError(RuntimeError):
    """An export step produced something that fails its check."""


def ort_session(path: Path, threads: int = 0):
    """A CPU InferenceSession on `path`; `threads` intra-op threads (0: ONNX Runtime's default)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run_ort(session, sketch: np.ndarray, class_id: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """IMAGE for one batch of the contract's inputs."""
    return session.run([IMAGE], {SKETCH: sketch, CLASS_ID: class_id, NOISE: noise})[0]


def random_inputs(n: int, resolution: int, noise_dim: int, num_classes: int,
                  seed: int | np.random.Generator = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch of `n` random contract inputs (noise sketches, classes, standard-normal noise) for checks and
    benchmarks: the same arrays for the same seed."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, resolution, resolution), dtype=np.uint8),
            rng.integers(0, num_classes, (n, 1)).astype(np.int32),
            rng.standard_normal((n, noise_dim)).astype(np.float32))
