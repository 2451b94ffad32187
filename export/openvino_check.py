"""OpenVINO as the CPU runtime: the same model.onnx run by OpenVINO against ONNX Runtime (the reference) on real
validation sketches, and batch invariance under OpenVINO. Torch-free. Fails the export below the bounds."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.errors import ExportError
from export.fp16_check import psnr
from triton_repo.precision import DEFAULT_PRECISION
from triton_repo.runtimes import ort_session, ov_batches, ov_compiled, run_ort, run_ov

MIN_PSNR_DB = 40.0
# uint8 levels; the shipped model: 1 in float32, 26 in bfloat16 (mean 0.44) on 32 real validation sketches
MAX_LEVELS = 32


@dataclass(frozen=True)
class OpenVinoReport:
    psnr_db: float
    max_abs_diff: int
    mean_abs_diff: float
    batch_invariant: bool
    n: int
    precision: str  # what OpenVINO computed in here ("f32", "bf16")

    def as_dict(self) -> dict:
        return {"psnr_db_vs_onnxruntime": round(self.psnr_db, 2), "max_abs_diff_levels": self.max_abs_diff,
                "mean_abs_diff_levels": round(self.mean_abs_diff, 4), "batch_invariant": self.batch_invariant,
                "n_samples": self.n, "precision": self.precision, "min_psnr_db": MIN_PSNR_DB, "max_levels": MAX_LEVELS}


def openvino_check(onnx_path: Path, sketch: np.ndarray, class_id: np.ndarray, noise: np.ndarray,
                   threads: int = 1, precision: str | None = DEFAULT_PRECISION,
                   static_batches: bool = True) -> OpenVinoReport:
    """OpenVINO vs ONNX Runtime on the same inputs, and each input alone vs in the batch (identical bytes);
    `precision` None checks the plugin's default on this CPU (what Triton's OpenVINO backend runs);
    `static_batches`: compiled per static batch size as the CPU folder's model.py runs it, else the graph as it is
    (dynamic batch), as Triton's OpenVINO backend runs it."""
    compiled = (ov_batches if static_batches else ov_compiled)(onnx_path, threads, precision=precision)
    got = run_ov(compiled, sketch, class_id, noise)
    ref = run_ort(ort_session(onnx_path), sketch, class_id, noise)
    diff = np.abs(got.astype(np.int16) - ref.astype(np.int16))
    alone = np.concatenate([run_ov(compiled, sketch[i:i + 1], class_id[i:i + 1], noise[i:i + 1])
                            for i in range(len(sketch))])
    rep = OpenVinoReport(psnr(got, ref), int(diff.max()), float(diff.mean()), bool(np.array_equal(alone, got)),
                         len(sketch), compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())
    if rep.psnr_db < MIN_PSNR_DB or rep.max_abs_diff > MAX_LEVELS or not rep.batch_invariant:
        raise ExportError(f"OpenVINO check failed (need PSNR >= {MIN_PSNR_DB} dB, <= {MAX_LEVELS} levels, batch "
                          f"invariance): {rep.as_dict()}")
    return rep
