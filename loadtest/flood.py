"""An open-loop flood: one-image requests sent at a fixed rate whatever the answers, with no deadline and no request
timeout (what a misbehaving batch producer does). Shows what bounds the server's queue when nobody gives up: the
queue bound refuses what does not fit at once (UNAVAILABLE "Exceeds maximum queue size"), and what was admitted is
answered within the time the queue takes to drain. Sent over many channels, so that no client-side stream limit
queues requests before the server sees them."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from loadtest.callers import Outcome, count_outcomes, quantile_ms, raw_inputs
from loadtest.sketches import sketch_set
from loadtest.triton_metrics import scrape

CHANNELS = 32


@dataclass(frozen=True)
class FloodResult:
    offered_rps: float
    records: list[Outcome]
    max_pending: float  # the most requests Triton reported queued at once (nv_inference_pending_request_count)

    def report(self, seconds: float) -> dict:
        ok = sorted(r.t1 - r.t0 for r in self.records if r.outcome == "OK")
        refused = sorted(r.t1 - r.t0 for r in self.records if r.outcome != "OK")
        q = quantile_ms

        # answers keep coming after the flood stops (the queue drains): the rate is over the whole span
        span = max((r.t1 for r in self.records), default=0.0) - min((r.t0 for r in self.records), default=0.0)
        return {"offered_rps": self.offered_rps, "sent": len(self.records), "outcomes": count_outcomes(self.records),
                "flood_s": seconds, "answered_rps": round(len(ok) / span, 1) if span > 0 else None,
                "answered_ms": {"p50": q(ok, .5), "p99": q(ok, .99), "max": q(ok, 1.0)},
                "refused_ms": {"p50": q(refused, .5), "p99": q(refused, .99)}, "max_pending": self.max_pending}


def flood(url: str, metrics_url: str, rate_rps: float, seconds: float, resolution: int = 64, noise_dim: int = 64,
          drain_timeout_s: float = 600.0) -> FloodResult:
    """Send `rate_rps` one-image requests per second for `seconds`, then wait for every answer."""
    import tritonclient.grpc as grpcclient
    clients = [grpcclient.InferenceServerClient(url) for _ in range(CHANNELS)]
    sketches = sketch_set(8, resolution)
    rng = np.random.default_rng()
    records: list[Outcome] = []
    lock = threading.Condition()
    pending = [0.0]
    stop = threading.Event()

    def watch() -> None:  # the server's queue, sampled while the flood lasts
        while not stop.is_set():
            try:
                pending[0] = max(pending[0], scrape(metrics_url).get("nv_inference_pending_request_count", 0.0))
            except OSError:
                pass
            stop.wait(0.05)

    def done(t0: float):
        def callback(result, error) -> None:
            outcome = "OK" if error is None else str(error.status()).replace("StatusCode.", "")
            with lock:
                records.append(Outcome(t0, time.monotonic(), outcome, "" if error is None else str(error)[:200]))
                lock.notify_all()
        return callback

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start, k = time.monotonic(), 0
    try:
        while (now := time.monotonic()) - start < seconds:
            due = start + k / rate_rps
            if due > now:
                time.sleep(due - now)
            ins = raw_inputs(sketches[k % 8][None], np.array([[k % 4]], np.int32),
                             rng.standard_normal((1, noise_dim), dtype=np.float32))
            clients[k % CHANNELS].async_infer("sketchygan", ins, done(time.monotonic()))
            k += 1
        offered = k / (time.monotonic() - start)
        with lock:
            lock.wait_for(lambda: len(records) >= k, drain_timeout_s)
    finally:
        stop.set()
        watcher.join(5)
        for c in clients:
            c.close()
    return FloodResult(round(offered, 1), list(records), pending[0])
