"""Closed-loop load generator (perf_analyzer does not run on Debian 12): N workers, each sending one request after
another through the project's client (the load engine, loadtest/callers.py), for a fixed duration or request count.

Two drivers: `threads` (one SketchClient shared by N threads) and `asyncio` (one AsyncSketchClient, N tasks on one
event loop). Both record the CPU seconds the generator itself and, given its pid, the server's process tree used
while measuring: on a machine where both share the cores, that is what the server did not get.
"""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

import numpy as np

from loadtest.callers import Callers
from loadtest.cpu import tree_cpu_seconds
from loadtest.triton_metrics import average_batch, delta, scrape

DRIVERS = {"threads": "client", "asyncio": "async"}  # driver -> the load engine's caller kind


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float] = field(repr=False, default_factory=list)
    server: dict[str, float] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds in the window: loadgen + server processes
    driver: str = "threads"
    error_kinds: dict[str, int] = field(default_factory=dict)  # "<gRPC code or error type>: <message start>" -> count

    @classmethod
    def pooled(cls, results: list["LoadResult"]) -> "LoadResult":
        """Several windows of the same load as one: counts, times, latencies, metrics and CPU added up."""
        def add(dicts: list[dict[str, float]]) -> dict[str, float]:
            out: dict[str, float] = {}
            for d in dicts:
                for k, v in d.items():
                    out[k] = out.get(k, 0.0) + v
            return out
        if not results or len({(r.concurrency, r.driver) for r in results}) != 1:
            raise ValueError("pooled() needs at least one result, all at the same concurrency and driver")
        return cls(results[0].concurrency, sum(r.requests for r in results), sum(r.errors for r in results),
                   sum(r.seconds for r in results), [x for r in results for x in r.latencies_ms],
                   add([r.server for r in results]), add([r.cpu_s for r in results]), results[0].driver,
                   {k: int(v) for k, v in add([r.error_kinds for r in results]).items()})

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
        out = {"concurrency": self.concurrency, "driver": self.driver, "requests": self.requests,
               "errors": self.errors, "error_kinds": self.error_kinds, "throughput_rps": round(self.throughput, 2),
               "p50_ms": round(self.pct(50), 2),
               "p95_ms": round(self.pct(95), 2), "p99_ms": round(self.pct(99), 2), "mean_ms": round(mean_ms, 2),
               "server_request_ms": round(server_ms, 2), "client_overhead_ms": round(mean_ms - server_ms, 2),
               "server_queue_ms": round(s.get("nv_inference_queue_duration_us", 0) / succ / 1000, 2) if succ else None,
               "avg_batch": round(average_batch(s), 2)}
        if self.seconds and self.cpu_s:  # cores kept busy on average during the window, per process
            out["cores"] = {k: round(v / self.seconds, 3) for k, v in self.cpu_s.items()}
        if self.requests and "loadgen" in self.cpu_s:
            out["loadgen_cpu_ms_per_request"] = round(1000 * self.cpu_s["loadgen"] / self.requests, 3)
        return out


class _Window:
    """The measuring window: metrics and CPU counters read at its start and end."""

    def __init__(self, metrics_url: str | None, server_pid: int | None) -> None:
        self.metrics_url, self.server_pid = metrics_url, server_pid

    def _cpu(self) -> tuple[float, dict[str, float]]:
        return time.process_time(), tree_cpu_seconds(self.server_pid) if self.server_pid else {}

    def _metrics(self) -> dict[str, float]:
        return scrape(self.metrics_url) if self.metrics_url else {}

    def open(self) -> None:
        """Read the counters, then start counting at once: the slow /proc walk comes first, so that only the metrics
        scrape separates Triton's snapshot from the client's."""
        self.cpu_before = self._cpu()
        self.metrics_before = self._metrics()
        self.t0 = time.monotonic()

    def close(self) -> tuple[float, float, dict, dict]:
        """(start, end) of the window in monotonic s, Triton's counters and the CPU seconds used within it."""
        t1 = time.monotonic()
        metrics = delta(self.metrics_before, self._metrics())
        after = self._cpu()
        cpu = {"loadgen": after[0] - self.cpu_before[0]}
        cpu.update({name: sec - self.cpu_before[1].get(name, 0.0) for name, sec in after[1].items()})
        return self.t0, t1, metrics, cpu


def run_load(url: str, metrics_url: str | None, concurrency: int, seconds: float = 10.0,
             max_requests: int | None = None, warmup_s: float = 1.0, timeout_s: float = 30.0,
             driver: str = "threads", server_pid: int | None = None, tls: dict | None = None) -> LoadResult:
    """Drive `concurrency` closed-loop callers (loadtest/callers.py) through the project's client, one try per call;
    count only requests completed inside the window that opens after `warmup_s`. `tls`: the client's TLS options."""
    if driver not in DRIVERS:
        raise ValueError(f"unknown driver {driver!r}: expected one of {', '.join(DRIVERS)}")
    if concurrency < 1 or seconds <= 0:
        raise ValueError(f"need concurrency >= 1 and seconds > 0, got {concurrency} and {seconds}")
    from sketchygan_client import SketchClient
    with SketchClient(url, timeout_s=timeout_s, retries=0, **(tls or {})) as probe:
        info = probe.info
    window = _Window(metrics_url, server_pid)
    with Callers(url, concurrency, DRIVERS[driver], deadline_s=timeout_s, retries=0, resolution=info.resolution,
                 noise_dim=info.noise_dim, classes=len(info.class_names), sketches=16, tls=tls) as callers:
        time.sleep(warmup_s)
        window.open()
        if max_requests:
            callers.wait_ended(callers.ended() + max_requests, seconds)
        else:
            time.sleep(seconds)
        a, b, server, cpu = window.close()
        done = callers.between(a, b)
    ok = [r for r in done if r.outcome == "OK"]
    kinds = collections.Counter(f"{r.outcome}: {r.detail.partition(': ')[2][:60]}" for r in done if r.outcome != "OK")
    return LoadResult(concurrency, len(ok), len(done) - len(ok), b - a, [1000 * (r.t1 - r.t0) for r in ok], server,
                      cpu, driver, dict(kinds))
