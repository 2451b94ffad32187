"""Checkpoint -> ONNX with the contract's tensors and a dynamic batch axis, checked against PyTorch."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from export.errors import ExportError
from export.graph import ServingGraph
from training.generator import Generator
from training.upsampler import Upsampler
from triton_repo.contract import CLASS_ID, IMAGE, NOISE, SKETCH, Contract, ScorerContract
from triton_repo.runtimes import ort_session, run_ort

OPSET = 17


@dataclass(frozen=True)
class ParityReport:
    max_abs_diff: int  # in uint8 levels
    frac_differing: float
    n: int

    def as_dict(self) -> dict:
        return {"max_abs_diff_levels": self.max_abs_diff, "fraction_of_values_differing": self.frac_differing,
                "n_samples": self.n}


def export_onnx(generator: Generator, path: Path, upsampler: Upsampler | None = None) -> None:
    """Trace the serving graph to ONNX (opset 17, dynamic batch) and validate it with onnx.checker."""
    graph = ServingGraph(generator, upsampler).eval()
    s, z = generator.cfg.resolution, generator.cfg.noise_dim
    example = (torch.full((2, s, s), 255, dtype=torch.uint8), torch.zeros(2, 1, dtype=torch.int32), torch.zeros(2, z))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(graph, example, str(path), input_names=[SKETCH, CLASS_ID, NOISE], output_names=[IMAGE],
                          dynamic_axes={n: {0: "batch"} for n in (SKETCH, CLASS_ID, NOISE, IMAGE)},
                          opset_version=OPSET, dynamo=False)
    model = onnx.load(str(path))
    dims = model.graph.output[0].type.tensor_type.shape.dim
    if any(not d.HasField("dim_value") for d in dims[1:]):  # a Resize inside leaves the image's side symbolic
        side = s * (upsampler.cfg.scale if upsampler is not None else 1)
        for d, n in zip(dims[1:], (side, side, 3)):
            d.dim_value = n
        onnx.save(model, str(path))
    onnx.checker.check_model(model, full_check=True)


def onnx_io(path: Path) -> dict[str, tuple[str, tuple]]:
    """{tensor name: (numpy dtype name, shape with -1 for dynamic dims)} of an ONNX file's inputs and outputs."""
    model = onnx.load(str(path))
    out = {}
    for v in list(model.graph.input) + list(model.graph.output):
        t = v.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
        out[v.name] = (onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name, dims)
    return out


def check_io(path: Path, contract: Contract | ScorerContract) -> None:
    """The ONNX graph's tensors must be exactly the contract's (the generator's or the scorer's; batch dim dynamic)."""
    io = onnx_io(path)
    want = {t.name: (t.dtype, (-1, *t.dims)) for t in contract.inputs + contract.outputs}
    if io != want:
        raise ExportError(f"{path} tensors {io} do not match the contract {want}")


def parity(generator: Generator, path: Path, sketch: np.ndarray, class_id: np.ndarray, noise: np.ndarray,
           max_levels: int = 2, upsampler: Upsampler | None = None) -> ParityReport:
    """ONNX Runtime vs PyTorch on the same inputs; fails above `max_levels` uint8 levels (rounding at .5
    boundaries can flip one level; more means the graphs differ)."""
    with torch.no_grad():
        ref = ServingGraph(generator, upsampler)(torch.from_numpy(sketch), torch.from_numpy(class_id),
                                      torch.from_numpy(noise)).numpy()
    got = run_ort(ort_session(path), sketch, class_id, noise)
    diff = np.abs(ref.astype(np.int16) - got.astype(np.int16))
    rep = ParityReport(int(diff.max()), float((diff > 0).mean()), len(sketch))
    if rep.max_abs_diff > max_levels:
        raise ExportError(f"ONNX output differs from PyTorch by {rep.max_abs_diff} levels (> {max_levels})")
    return rep
