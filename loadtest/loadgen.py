"""Closed-loop threaded load generator (perf_analyzer does not run on Debian 12): N workers, each sending one
request after another through the project's client, for a fixed duration or request count."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from loadtest.sketches import sketch_set
from loadtest.triton_metrics import average_batch, delta, scrape


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float] = field(repr=False, default_factory=list)
    server: dict[str, float] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> dict:
        s = self.server
        succ = s.get("nv_inference_request_success", 0.0)
        server_ms = s.get("nv_inference_request_duration_us", 0.0) / succ / 1000 if succ else float("nan")
        mean_ms = float(np.mean(self.latencies_ms)) if self.latencies_ms else float("nan")
        return {"concurrency": self.concurrency, "requests": self.requests, "errors": self.errors,
                "throughput_rps": round(self.throughput, 2), "p50_ms": round(self.pct(50), 2),
                "p95_ms": round(self.pct(95), 2), "p99_ms": round(self.pct(99), 2), "mean_ms": round(mean_ms, 2),
                "server_request_ms": round(server_ms, 2), "client_overhead_ms": round(mean_ms - server_ms, 2),
                "server_queue_ms": round(s.get("nv_inference_queue_duration_us", 0) / succ / 1000, 2) if succ else None,
                "avg_batch": round(average_batch(s), 2)}


def run_load(url: str, metrics_url: str | None, concurrency: int, seconds: float = 10.0,
             max_requests: int | None = None, resolution: int = 64, warmup_s: float = 1.0,
             timeout_s: float = 30.0) -> LoadResult:
    """Drive `concurrency` closed-loop workers; count only requests completed after `warmup_s`."""
    from sketchygan_client import SketchClient
    client = SketchClient(url, timeout_s=timeout_s, retries=0)
    info = client.info
    sketches = sketch_set(16, info.resolution)
    n_classes = len(info.class_names)
    lock = threading.Lock()
    lat: list[float] = []
    counts = {"ok": 0, "err": 0}
    stop = threading.Event()
    measuring = threading.Event()

    def worker(wid: int) -> None:
        i = wid
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                client.generate_array(sketches[i % len(sketches)], i % n_classes, seed=i)
                ok = True
            except Exception:  # noqa: BLE001 — counted as an error
                ok = False
            dt = (time.perf_counter() - t0) * 1000
            if measuring.is_set():
                with lock:
                    counts["ok" if ok else "err"] += 1
                    if ok:
                        lat.append(dt)
                    if max_requests and counts["ok"] + counts["err"] >= max_requests:
                        stop.set()
            i += concurrency

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(concurrency)]
    for t in threads:
        t.start()
    time.sleep(warmup_s)
    before = scrape(metrics_url) if metrics_url else {}
    measuring.set()
    t0 = time.perf_counter()
    stop.wait(seconds)
    stop.set()
    elapsed = time.perf_counter() - t0
    for t in threads:
        t.join(timeout_s)
    after = scrape(metrics_url) if metrics_url else {}
    client.close()
    return LoadResult(concurrency, counts["ok"], counts["err"], elapsed, lat, delta(before, after))
