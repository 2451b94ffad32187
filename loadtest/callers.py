"""The load engine: N closed-loop callers, each sending one request after another and recording every finished call
with its outcome. Chaos, restart, scale-out and the benchmark's load generator (loadgen.py) all drive it.

Kinds: 'client' — the project's SketchClient shared by N threads (its default retries and deadline unless given);
'async' — one AsyncSketchClient, N tasks on one event loop in a thread; 'raw' — plain tritonclient in N threads,
one try per call, no request timeout sent (what a caller without the library does)."""
from __future__ import annotations

import asyncio
import collections
import threading
import time
from dataclasses import dataclass

import numpy as np

from loadtest.sketches import sketch_set

KINDS = ("client", "async", "raw")


@dataclass
class Outcome:
    """One finished call: when it started and ended (monotonic s), its outcome ('OK' or an error name) and, for an
    error, its message (what a failing test prints)."""

    t0: float
    t1: float
    outcome: str
    detail: str = ""


class Callers:
    """N closed-loop callers (see the module docstring for `kind`). Call i sends sketch i of a fixed set of
    `sketches` drawings, class i mod `classes` and seed i. `retries`: the client's retry limit (None: its default,
    until the deadline)."""

    def __init__(self, url: str, n: int, kind: str = "client", deadline_s: float | None = None,
                 resolution: int = 64, noise_dim: int = 64, pause_after_error_s: float = 0.0,
                 retries: int | None = None, classes: int = 4, sketches: int = 8) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown caller kind {kind!r}: expected one of {', '.join(KINDS)}")
        if n < 1:
            raise ValueError(f"need at least one caller, got {n}")
        self.url, self.n, self.kind, self.deadline_s = url, n, kind, deadline_s
        self.resolution, self.noise_dim, self.pause = resolution, noise_dim, pause_after_error_s
        self.retries, self.classes, self.n_sketches = retries, classes, sketches
        self.records: list[Outcome] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._shared = None

    def _client_kw(self) -> dict:
        kw: dict = {} if self.deadline_s is None else {"timeout_s": self.deadline_s}
        return kw | ({} if self.retries is None else {"retries": self.retries})

    def __enter__(self) -> "Callers":
        sketches = sketch_set(self.n_sketches, self.resolution)
        if self.kind == "async":
            self._threads.append(threading.Thread(target=asyncio.run, args=(self._async_main(sketches),),
                                                  daemon=True))
        else:
            if self.kind == "client":
                from sketchygan_client import SketchClient
                self._shared = SketchClient(self.url, **self._client_kw())
            self._threads += [threading.Thread(target=self._loop, args=(w, sketches), daemon=True)
                              for w in range(self.n)]
        for t in self._threads:
            t.start()
        return self

    def _record(self, t0: float, error: Exception | None) -> None:
        out, detail = ("OK", "") if error is None else (error_name(error), f"{type(error).__name__}: {error}"[:400])
        with self._cond:
            self.records.append(Outcome(t0, time.monotonic(), out, detail))
            self._cond.notify_all()
        if error is not None and self.pause:
            time.sleep(self.pause)

    def _loop(self, w: int, sketches) -> None:
        if self.kind == "raw":
            import tritonclient.grpc as grpcclient
            raw = grpcclient.InferenceServerClient(self.url)
            ins = raw_inputs(sketches[w % len(sketches)][None], np.array([[w % self.classes]], np.int32),
                             np.zeros((1, self.noise_dim), np.float32))
        i = w
        while not self._stop.is_set():
            t0, error = time.monotonic(), None
            try:
                if self.kind == "raw":
                    raw.infer("sketchygan", ins, client_timeout=self.deadline_s or 10.0)
                else:
                    self._shared.generate_array(sketches[i % len(sketches)], i % self.classes, seed=i)
            except Exception as e:  # noqa: BLE001 — every failure is what the report counts
                error = e
            self._record(t0, error)
            i += self.n

    async def _async_main(self, sketches) -> None:
        from sketchygan_client import AsyncSketchClient
        client = AsyncSketchClient(self.url, **self._client_kw())

        async def worker(w: int) -> None:
            i = w
            while not self._stop.is_set():
                t0, error = time.monotonic(), None
                try:
                    await client.generate_array(sketches[i % len(sketches)], i % self.classes, seed=i)
                except Exception as e:  # noqa: BLE001 — every failure is what the report counts
                    error = e
                self._record(t0, error)  # the lock is held for an append only: never blocks the loop for long
                i += self.n

        try:
            await asyncio.gather(*(worker(w) for w in range(self.n)))
        finally:
            await client.close()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)
        if self._shared is not None:
            self._shared.close()

    def between(self, a: float, b: float) -> list[Outcome]:
        """Calls that ended in [a, b)."""
        with self._cond:
            return [r for r in self.records if a <= r.t1 < b]

    def ended(self) -> int:
        """How many calls have ended so far."""
        with self._cond:
            return len(self.records)

    def wait_ended(self, total: int, timeout_s: float) -> bool:
        """Wait until `total` calls have ended in all, at most `timeout_s`; True if they did."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.records) >= total, timeout_s)


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
