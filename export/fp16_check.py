"""FP16 early warning on CPU: convert the ONNX graph to half precision and compare with FP32 in ONNX Runtime.

Normalisation and gating ops stay FP32 (TensorRT #2691, onnxruntime #10079: min-max and batch-norm statistics
overflow or lose precision in FP16); the report gives PSNR and max abs diff on real validation sketches.
Threshold: PSNR >= 35 dB. At 35 dB the RMS error is ~4.5 uint8 levels — invisible on these 64x64 images, while a
precision bug (overflow, NaN, a dead gate) drops PSNR far below 30 dB.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from export.errors import ExportError
from triton_repo.runtimes import ort_session, run_ort

# MinMax gates (ReduceMin/Max and the division after them), batch norm, and the smooth ReLU's sqrt(c + x^2)
KEEP_FP32_OPS = ("ReduceMin", "ReduceMax", "BatchNormalization", "Sqrt", "Div")
MIN_PSNR_DB = 35.0


@dataclass(frozen=True)
class Fp16Report:
    psnr_db: float
    max_abs_diff: int
    mean_abs_diff: float
    finite: bool
    n: int
    keep_fp32_ops: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"psnr_db": round(self.psnr_db, 2), "max_abs_diff_levels": self.max_abs_diff,
                "mean_abs_diff_levels": round(self.mean_abs_diff, 4), "finite_and_nonconstant": self.finite,
                "n_samples": self.n, "keep_fp32_ops": self.keep_fp32_ops, "min_psnr_db": MIN_PSNR_DB}


def convert_fp16(src: Path, dst: Path, keep_fp32_ops: tuple[str, ...] = KEEP_FP32_OPS) -> None:
    """Fold the graph (ORT basic, hardware-independent optimisations: removes the exporter's Identity aliases of
    batch-norm buffers that trip the converter), then convert with onnxruntime's float16 tool."""
    import tempfile

    import onnxruntime as ort
    from onnxruntime.transformers import float16
    with tempfile.TemporaryDirectory() as tmp:
        folded = Path(tmp) / "folded.onnx"
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
        model = onnx.load(str(folded))
    half = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=list(keep_fp32_ops))
    _toposort(half.graph)  # the converter appends its Cast nodes at the end
    onnx.checker.check_model(half)
    onnx.save(half, str(dst))


def _toposort(graph: onnx.GraphProto) -> None:
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = [n for n in pending if not all(i in ready for i in n.input)]
        done = [n for n in pending if all(i in ready for i in n.input)]
        if not done:
            raise ExportError(f"FP16 graph has a cycle or dangling inputs at {[n.name for n in rest[:3]]}")
        for n in done:
            ordered.append(n)
            ready.update(n.output)
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def fp16_check(fp32_path: Path, fp16_path: Path, sketch: np.ndarray, class_id: np.ndarray, noise: np.ndarray,
               keep_fp32_ops: tuple[str, ...] = KEEP_FP32_OPS, min_psnr: float = MIN_PSNR_DB) -> Fp16Report:
    """Convert, run both, compare; raises ExportError below `min_psnr` or on a constant/non-finite image."""
    convert_fp16(fp32_path, fp16_path, keep_fp32_ops)
    ref = run_ort(ort_session(fp32_path), sketch, class_id, noise)
    got = run_ort(ort_session(fp16_path), sketch, class_id, noise)
    diff = np.abs(ref.astype(np.int16) - got.astype(np.int16))
    # uint8 output cannot hold NaN: a NaN collapses to a constant image, so that is what we look for
    nonconstant = bool(all(img.std() > 0 for img in got))
    rep = Fp16Report(psnr(ref, got), int(diff.max()), float(diff.mean()), nonconstant, len(sketch),
                     list(keep_fp32_ops))
    if not rep.finite or rep.psnr_db < min_psnr:
        raise ExportError(f"FP16 check failed: {json.dumps(rep.as_dict())}")
    return rep
