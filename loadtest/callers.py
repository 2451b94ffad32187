"""Closed-loop callers in threads, what chaos, restart and scale-out runs drive a server with: the project's client
(its default retries and deadline) or plain tritonclient callers (one try per call), every finished call recorded
with its outcome."""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass

import numpy as np

from loadtest.sketches import sketch_set


@dataclass
class Outcome:
    """One finished call: when it started and ended (monotonic s), its outcome ('OK' or an error name) and, for an
    error, its message (what a failing test prints)."""

    t0: float
    t1: float
    outcome: str
    detail: str = ""


class Callers:
    """N closed-loop callers in threads. kind 'client': the project's SketchClient (default settings unless
    `deadline_s`); kind 'raw': plain tritonclient, one try per call, no request timeout sent."""

    def __init__(self, url: str, n: int, kind: str = "client", deadline_s: float | None = None,
                 resolution: int = 64, noise_dim: int = 64, pause_after_error_s: float = 0.0) -> None:
        self.url, self.n, self.kind, self.deadline_s = url, n, kind, deadline_s
        self.resolution, self.noise_dim, self.pause = resolution, noise_dim, pause_after_error_s
        self.records: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> "Callers":
        sketches = sketch_set(8, self.resolution)
        shared = None
        if self.kind == "client":
            from sketchygan_client import SketchClient
            kw = {} if self.deadline_s is None else {"timeout_s": self.deadline_s}
            shared = SketchClient(self.url, **kw)
        for w in range(self.n):
            t = threading.Thread(target=self._loop, args=(w, sketches, shared), daemon=True)
            t.start()
            self._threads.append(t)
        self._shared = shared
        return self

    def _loop(self, w: int, sketches, shared) -> None:
        if self.kind == "raw":
            import tritonclient.grpc as grpcclient
            raw = grpcclient.InferenceServerClient(self.url)
            ins = raw_inputs(sketches[w % len(sketches)][None], np.array([[w % 4]], np.int32),
                             np.zeros((1, self.noise_dim), np.float32))
        i = w
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                if self.kind == "raw":
                    raw.infer("sketchygan", ins, client_timeout=self.deadline_s or 10.0)
                else:
                    shared.generate_array(sketches[i % len(sketches)], i % 4, seed=i)
                out, detail = "OK", ""
            except Exception as e:  # noqa: BLE001 — every failure is what the report counts
                out, detail = error_name(e), f"{type(e).__name__}: {e}"[:400]
            with self._lock:
                self.records.append(Outcome(t0, time.monotonic(), out, detail))
            if out != "OK" and self.pause:
                time.sleep(self.pause)
            i += self.n

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)
        if self._shared is not None:
            self._shared.close()

    def between(self, a: float, b: float) -> list[Outcome]:
        """Calls that ended in [a, b)."""
        with self._lock:
            return [r for r in self.records if a <= r.t1 < b]


def raw_inputs(sk: np.ndarray, cid: np.ndarray, z: np.ndarray, sk_type: str = "UINT8") -> list:
    """Plain tritonclient inputs for one request (batched arrays), bypassing the project's client: what a caller
    without the library sends, and what tests use to send what the client would refuse."""
    import tritonclient.grpc as grpcclient
    ins = [grpcclient.InferInput("SKETCH", list(sk.shape), sk_type),
           grpcclient.InferInput("CLASS_ID", list(cid.shape), "INT32"),
           grpcclient.InferInput("NOISE", list(z.shape), "FP32")]
    for i, a in zip(ins, (sk, cid, z)):
        i.set_data_from_numpy(a)
    return ins


def error_name(e: Exception) -> str:
    """'UNAVAILABLE', 'NOT_FOUND', ... for tritonclient errors; the class name for the project's typed errors."""
    status = getattr(e, "status", None)
    if callable(status) and status():
        return str(status()).replace("StatusCode.", "")
    return type(e).__name__


def count_outcomes(records: list[Outcome]) -> dict[str, int]:
    """How many calls ended in each outcome."""
    return dict(collections.Counter(r.outcome for r in records))


def ok_rate(records: list[Outcome], seconds: float) -> float:
    """Successful calls per second over `seconds`."""
    return round(sum(r.outcome == "OK" for r in records) / seconds, 1) if seconds > 0 else 0.0
