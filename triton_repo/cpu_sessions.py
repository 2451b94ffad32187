"""How the CPU target runs model.onnx: an ONNX Runtime session, or OpenVINO compiled once per power-of-two batch
size, a batch run as power-of-two pieces (7 images: 4 + 2 + 1).

Why static sizes: OpenVINO's CPU plugin computes a graph whose batch dimension is dynamic ~1.5x slower than the same
graph reshaped to a static batch (2026-12-07, 2-core Xeon with AMX, the shipped 128 px graph, one thread: float32
107 against 159 images/s at batch 4, bfloat16 219 against 349), and batch sizes that change from call to call cost
the dynamic graph another 15 %. The rows of a batch are independent, so a row gives the same pixels in any piece it
lands in (tested); the pieces cost a few per cent against one static batch of the same size, and powers of two keep
start-up to a handful of compilations (1, 2, 4, 8, 16 for batches up to 31).

Self-contained (numpy, onnxruntime or openvino): the project imports it (triton_repo/runtimes.py), and every CPU
version folder carries a copy beside model.py, which loads it by path: one source for both."""
from __future__ import annotations

import numpy as np


def ort_session(path, threads: int = 0):
    """A CPU InferenceSession on `path`; `threads` intra-op threads (0: ONNX Runtime's default), one inter-op."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ov_properties(precision: str | None, threads: int = 0, pinned: bool = False) -> dict:
    """OpenVINO CPU compile properties: `threads` inference threads (0: OpenVINO's choice), pinning, and the precision
    (None: the plugin's default for this CPU, bfloat16 where it has it natively)."""
    props = {"INFERENCE_NUM_THREADS": int(threads), "ENABLE_CPU_PINNING": bool(pinned)}
    if precision is not None:
        props["INFERENCE_PRECISION_HINT"] = precision
    return props


def pieces(n: int) -> list[int]:
    """`n` as powers of two, largest first: the static batch sizes a batch of `n` runs as."""
    if n < 1:
        raise ValueError(f"a batch has at least one row, got {n}")
    return [1 << b for b in range(n.bit_length() - 1, -1, -1) if n >> b & 1]


class OpenVinoBatches:
    """model.onnx compiled by OpenVINO for the CPU once per power-of-two batch size (on first use, or ahead with
    `prepare`), called like a compiled model: `model(feed)[model.output(name)]`. Every input's first dimension is the
    batch. `precision` None: the plugin's default for this CPU; `cache_dir`: where OpenVINO keeps compiled blobs (a
    restart imports them instead of compiling)."""

    def __init__(self, path, precision: str | None, threads: int = 0, pinned: bool = False,
                 cache_dir: str | None = None) -> None:
        import openvino as ov
        self._core = ov.Core()
        if cache_dir:
            self._core.set_property({"CACHE_DIR": str(cache_dir)})
        self._path = str(path)
        self._props = ov_properties(precision, threads, pinned)
        self._compiled: dict[int, object] = {}

    def prepare(self, largest: int) -> None:
        """Compile every piece a batch of up to `largest` rows needs, so that no request waits for a compilation."""
        for size in pieces((1 << max(1, int(largest)).bit_length()) - 1):
            self._model(size)

    def _model(self, size: int):
        """The model compiled for batches of exactly `size` (compiled from the read model, not the path: OpenVINO
        keys the cache of a path by the path, of a model by its content)."""
        if size not in self._compiled:
            model = self._core.read_model(self._path)
            model.reshape({p.get_any_name(): [size, *(d.get_length() for d in list(p.get_partial_shape())[1:])]
                           for p in model.inputs})
            self._compiled[size] = self._core.compile_model(model, "CPU", self._props)
        return self._compiled[size]

    def output(self, name: str) -> str:
        return name

    def get_property(self, name: str):
        return self._model(1).get_property(name)

    def __call__(self, feed: dict) -> dict[str, np.ndarray]:
        """Every output for the batch `feed` (input name -> array), its rows in order."""
        n = len(next(iter(feed.values())))
        parts: dict[str, list[np.ndarray]] = {}
        start = 0
        for size in pieces(n):
            compiled = self._model(size)
            got = compiled({k: v[start:start + size] for k, v in feed.items()})
            for port in compiled.outputs:
                parts.setdefault(port.get_any_name(), []).append(got[port])  # a copy: outputs are not shared
            start += size
        return {k: v[0] if len(v) == 1 else np.concatenate(v) for k, v in parts.items()}
