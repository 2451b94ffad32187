"""Run an exported model.onnx on the CPU: the runtimes the CPU target can serve with (ONNX Runtime, OpenVINO) and
random contract inputs for checks and benchmarks. Torch-free: calibration, the load tester and the export's checks
use the same runners."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from triton_repo.contract import CLASS_ID, IMAGE, NOISE, SKETCH
from triton_repo.cpu_sessions import OpenVinoBatches, ort_session, ov_properties
from triton_repo.precision import DEFAULT_PRECISION

CPU_RUNTIMES = ("onnxruntime", "openvino")  # what the CPU target's model.py runs model.onnx with
# OpenVINO's CPU plugin computes in bfloat16 by default where the CPU has it natively (AVX-512-BF16, AMX) and in
# float32 elsewhere, so one runtime would give other pixels on another kind of machine: always told the precision
# (a deployment's, triton_repo/precision.py; None only where the plugin's default is what is measured)


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


def ov_batches(path: Path, threads: int = 0, pinned: bool = False,
               precision: str | None = DEFAULT_PRECISION) -> OpenVinoBatches:
    """The ONNX file as the CPU model folder's model.py runs it with OpenVINO: compiled per power-of-two static batch
    size (triton_repo/cpu_sessions.py says why); `run_ov` takes it like a compiled model."""
    return OpenVinoBatches(path, precision, threads, pinned)


def ov_compiled(path: Path, threads: int = 0, pinned: bool = False, precision: str | None = DEFAULT_PRECISION):
    """The ONNX file compiled as it is (dynamic batch) for OpenVINO's CPU plugin, as Triton's OpenVINO backend runs it
    (`threads` inference threads, 0: OpenVINO's choice), in `precision` (None: the plugin's default for this CPU,
    which is what Triton's OpenVINO backend computes in).
    Pinning is off by default: each pinned model binds its threads to the first cores, so two single-threaded
    models (or two Triton instances) end up sharing one core (measured: 2 x 1 thread at batch 8, 389 img/s pinned
    on 1.0 core vs 763 unpinned on 2.0)."""
    import openvino as ov
    core = ov.Core()
    return core.compile_model(core.read_model(str(path)), "CPU", ov_properties(precision, threads, pinned))


def ov_default_precision() -> str:
    """What OpenVINO's CPU plugin computes in on this machine unless told ("f32", or "bf16" where native)."""
    import openvino as ov
    return ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()


def run_ov(compiled, sketch: np.ndarray, class_id: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """IMAGE for one batch, OpenVINO (`ov_batches` or `ov_compiled`)."""
    return compiled({SKETCH: sketch, CLASS_ID: class_id, NOISE: noise})[compiled.output(IMAGE)]


def runner(runtime: str, onnx_path: Path, threads: int, pinned: bool = False,
           precision: str | None = DEFAULT_PRECISION, dynamic: bool = False) -> Callable[..., np.ndarray]:
    """A function (sketch, class_id, noise) -> IMAGE running `onnx_path` on `runtime` with `threads` threads, as
    the CPU model folder's model.py does (both runtimes release the GIL while they compute); `dynamic`: OpenVINO on
    the graph as exported instead (what model.py ran before static pieces, for benchmarks)."""
    if runtime == "onnxruntime":
        if precision not in (None, DEFAULT_PRECISION):
            raise ValueError(f"onnxruntime computes in {DEFAULT_PRECISION} here, not {precision}")
        sess = ort_session(onnx_path, threads=threads)
        return lambda *x: run_ort(sess, *x)
    if runtime == "openvino":
        compiled = (ov_compiled if dynamic else ov_batches)(onnx_path, threads, pinned, precision)
        return lambda *x: run_ov(compiled, *x)
    raise ValueError(f"unknown runtime {runtime!r}; expected one of {list(CPU_RUNTIMES)}")
