"""The load engine: N closed-loop callers, each sending one request after another and recording every finished call
with its outcome. Chaos, restart, scale-out and the benchmark's load generator (loadgen.py) all drive it.

Kinds: 'client' — the project's SketchClient shared by N threads (its default retries and deadline unless given);
'async' — one AsyncSketchClient, N tasks on one event loop in a thread; 'raw' — plain tritonclient in N threads,
one try per call, no request timeout sent (what a caller without the library does).

`send_timeout=True` ('raw' only): each request also carries a timeout, the caller's deadline less the server's
published `compute_reserve_s` (what docs/reliability.md tells a plain caller to send for deadline-aware shedding);
without it a plain caller's request is never refused for waiting, however long its caller waits.

`max_queue_wait_s`: the longest a request may wait in the server's queue (the client's option of that name; a
plain caller sends it as its request timeout): what a caller that prefers failing fast to queueing sends, and how a
test reproduces the per-image queue timeout the server's default policy had until 2026-12-06.

`sizes=(lo, hi)`: each call asks for a number of images drawn uniformly from lo..hi (one request for 'raw', one
client call for the others, which split what exceeds max_batch_size), each with fresh noise; default one image.
`fresh=True`: one-image calls are new each time too (by default they repeat a few requests, which a server started
with a response cache answers from it)."""
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
    `sketches` drawings, class i mod `classes` and seed i (with `sizes`: that many sketches from i on, seeds from
    i·hi on). `retries`: the client's retry limit (None: its default, until the deadline). `deadline_s` None: the
    client's default deadline, and for 'raw' a 10 s gRPC deadline (no request timeout either way)."""

    def __init__(self, url: str, n: int, kind: str = "client", deadline_s: float | None = None,
                 resolution: int = 64, noise_dim: int = 64, pause_after_error_s: float = 0.0,
                 retries: int | None = None, classes: int = 4, sketches: int = 8,
                 sizes: tuple[int, int] = (1, 1), send_timeout: bool = False,
                 max_queue_wait_s: float | None = None, fresh: bool = False, tls: dict | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown caller kind {kind!r}: expected one of {', '.join(KINDS)}")
        if n < 1:
            raise ValueError(f"need at least one caller, got {n}")
        if not 1 <= sizes[0] <= sizes[1]:
            raise ValueError(f"sizes must be (lo, hi) with 1 <= lo <= hi, got {sizes!r}")
        self.url, self.n, self.kind, self.deadline_s = url, n, kind, deadline_s
        self.resolution, self.noise_dim, self.pause = resolution, noise_dim, pause_after_error_s
        self.retries, self.classes, self.n_sketches, self.sizes = retries, classes, sketches, sizes
        self.send_timeout, self.max_queue_wait_s = send_timeout, max_queue_wait_s
        self.tls = tls or {}  # the client's TLS options (root_certificates, certificate_chain, private_key)
        self.fresh = fresh or sizes[1] > 1  # every call new (no response-cache hit), as multi-image calls always are
        # requests of different Callers never repeat one another (a server with a response cache would answer a
        # repeat from it): the seeds and noise of multi-image calls start from a fresh random salt
        self._salt = int(np.random.SeedSequence().entropy % (1 << 30))
        self.records: list[Outcome] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._shared = None

    def _client_kw(self) -> dict:
        kw: dict = {} if self.deadline_s is None else {"timeout_s": self.deadline_s}
        kw |= {} if self.max_queue_wait_s is None else {"max_queue_wait_s": self.max_queue_wait_s}
        return kw | ({} if self.retries is None else {"retries": self.retries}) | self.tls

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

    def _call_args(self, i: int, rng: np.random.Generator, sketches) -> tuple[list, list[int], list[int]]:
        """Call i's sketches, classes and seeds: one image, or a number drawn from `sizes`."""
        lo, hi = self.sizes
        k = 1 if hi == 1 else int(rng.integers(lo, hi + 1))
        rows = [i * hi + j for j in range(k)]
        return ([sketches[r % len(sketches)] for r in rows], [r % self.classes for r in rows],
                [(self._salt + r) % (1 << 31) for r in rows])

    def _loop(self, w: int, sketches) -> None:
        rng = np.random.default_rng((self._salt, w))
        if self.kind == "raw":
            import tritonclient.grpc as grpcclient
            raw = grpcclient.InferenceServerClient(self.url)
            deadline_s = self.deadline_s or 10.0
            waits = ([request_timeout_us(raw, deadline_s)] if self.send_timeout else []) + \
                ([int(1e6 * self.max_queue_wait_s)] if self.max_queue_wait_s is not None else [])
            timeout = {"timeout": max(1, min(waits))} if waits else {}
            # a cap on the queue wait is sent with the caller's deadline beside it, as the project's client does: the
            # server then judges the request by that deadline, not by the (shorter) wait
            deadline = self.max_queue_wait_s is not None
            one = raw_inputs(sketches[w % len(sketches)][None], np.array([[w % self.classes]], np.int32),
                             np.zeros((1, self.noise_dim), np.float32))
        i = w
        while not self._stop.is_set():
            t0, error = time.monotonic(), None
            try:
                if self.kind == "raw":
                    ins = one
                    if self.fresh:  # a request of k images, fresh noise: no two alike (no cache hits)
                        sk, cls, _ = self._call_args(i, rng, sketches)
                        ins = raw_inputs(np.stack(sk), np.array(cls, np.int32)[:, None],
                                         rng.standard_normal((len(sk), self.noise_dim), dtype=np.float32))
                    extra = {"parameters": {"deadline_unix_us": int(1e6 * (time.time() + deadline_s))}} if deadline \
                        else {}
                    raw.infer("sketchygan", ins, client_timeout=deadline_s, **timeout, **extra)
                elif self.fresh:
                    self._shared.generate_batch_array(*self._call_args(i, rng, sketches))
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
            i, rng = w, np.random.default_rng((self._salt, w))
            while not self._stop.is_set():
                t0, error = time.monotonic(), None
                try:
                    if self.fresh:
                        await client.generate_batch_array(*self._call_args(i, rng, sketches))
                    else:
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


def request_timeout_us(raw, deadline_s: float, model: str = "sketchygan") -> int:
    """What a plain tritonclient caller with a `deadline_s` deadline sends as the request's `timeout`: the deadline
    less the compute reserve the server publishes (model config parameter `compute_reserve_s`; 0 when it publishes
    none), in microseconds: a request still queued then is refused instead of computed for a caller who has gone."""
    from sketchygan_client.contract import ModelInfo
    from sketchygan_client.retry import queue_wait_s
    reserve = ModelInfo.from_config(raw.get_model_config(model, as_json=True)).compute_reserve_s or 0.0
    return max(1, int(1e6 * queue_wait_s(deadline_s, reserve)))


def error_name(e: Exception) -> str:
    """'UNAVAILABLE', 'NOT_FOUND', ... for tritonclient errors; the class name for the project's typed errors."""
    status = getattr(e, "status", None)
    if callable(status) and status():
        return str(status()).replace("StatusCode.", "")
    return type(e).__name__


def count_outcomes(records: list[Outcome]) -> dict[str, int]:
    """How many calls ended in each outcome."""
    return dict(collections.Counter(r.outcome for r in records))


def quantile_ms(sorted_s: list[float], p: float) -> float | None:
    """The `p` quantile (0..1, nearest rank) of sorted durations in seconds, in milliseconds (None for none)."""
    return round(1e3 * sorted_s[min(len(sorted_s) - 1, int(p * len(sorted_s)))], 1) if sorted_s else None


def ok_rate(records: list[Outcome], seconds: float) -> float:
    """Successful calls per second over `seconds`."""
    return round(sum(r.outcome == "OK" for r in records) / seconds, 1) if seconds > 0 else 0.0
