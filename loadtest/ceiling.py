"""The in-process ceiling: the served ONNX in ONNX Runtime, no server, on the same cores; and served / ceiling
measured back to back so that the machine's drifts cancel."""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.ort_runtime import ort_session, random_inputs, run_ort
from loadtest.loadgen import run_load


@dataclass(frozen=True)
class Layout:
    """An in-process ONNX Runtime layout: `sessions` sessions of `threads` intra-op threads, each run on its own
    Python thread at a fixed batch size (ORT releases the GIL, so the sessions run in parallel)."""
    sessions: int
    threads: int
    batch: int

    @property
    def name(self) -> str:
        return f"{self.sessions}x{self.threads}thread{'s' if self.threads > 1 else ''}_batch{self.batch}"

    def measure(self, onnx_path: Path, contract, seconds: float) -> tuple[float, float]:
        """(images/s, cores this process kept busy) over `seconds` after one warm-up run per session."""
        sessions = [ort_session(onnx_path, threads=self.threads) for _ in range(self.sessions)]
        x = random_inputs(self.batch, contract.resolution, contract.noise_dim, contract.num_classes)
        for sess in sessions:
            run_ort(sess, *x)
        counts = [0] * self.sessions
        stop = threading.Event()

        def work(i: int) -> None:
            while not stop.is_set():
                run_ort(sessions[i], *x)
                counts[i] += self.batch

        ts = [threading.Thread(target=work, args=(i,)) for i in range(self.sessions)]
        t0, c0 = time.perf_counter(), time.process_time()
        for t in ts:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in ts:
            t.join()
        elapsed = time.perf_counter() - t0
        return sum(counts) / elapsed, (time.process_time() - c0) / elapsed


def ceiling(onnx_path: Path, contract, seconds: float = 4.0, top: int = 3) -> dict:
    """In-process images/s over layouts that use the 2 cores: 1 session x 2 threads and 2 sessions x 1 thread, at
    several batch sizes. One short window per layout is noisy, so the `top` layouts go on to the paired rounds."""
    layouts = [Layout(1, 2, b) for b in (1, 4, 8, 16, 32)] + [Layout(2, 1, b) for b in (1, 2, 4, 8, 16)]
    results = {lay.name: lay.measure(onnx_path, contract, seconds)[0] for lay in layouts}
    ranked = sorted(layouts, key=lambda lay: results[lay.name], reverse=True)
    return {"images_per_s": {k: round(v, 2) for k, v in results.items()}, "best": ranked[0].name,
            "best_images_per_s": round(results[ranked[0].name], 2),
            "top_layouts": [dataclasses.asdict(lay) for lay in ranked[:top]]}


def paired_ratio(srv, onnx_path: Path, contract, layouts: list[Layout], concurrency: int, rounds: int,
                 seconds: float) -> dict:
    """served / ceiling measured back to back in each round, so that minutes-long drifts of this shared machine's
    speed cancel. Each round's ceiling is the best of `layouts` in that round (a max over noisy windows leans high,
    which makes the ratio conservative); the served figure is the server at `concurrency`. The median round is the
    figure. Each round also gives the per-core ratio, (served / cores the server's processes used) / (ceiling /
    cores the ceiling used): how well the server uses the CPU it gets, the load generator's share set aside."""
    out = []
    for r in range(rounds):
        rates = {lay.name: lay.measure(onnx_path, contract, max(2.0, seconds / 2)) for lay in layouts}  # server idle
        best = max(rates, key=lambda k: rates[k][0])
        ceil, ceil_cores = rates[best]
        served = run_load(srv.grpc_url, srv.metrics_url, concurrency, seconds, server_pid=srv.proc.pid).summary()
        server_cores = sum(v for k, v in served["cores"].items() if k != "loadgen")
        out.append({"ceiling_layout": best, "ceiling_images_per_s": round(ceil, 2),
                    "ceiling_cores": round(ceil_cores, 3), "served_rps": served["throughput_rps"],
                    "ratio": round(served["throughput_rps"] / ceil, 3),
                    "per_core_ratio": round((served["throughput_rps"] / server_cores) / (ceil / ceil_cores), 3),
                    "avg_batch": served["avg_batch"], "cores": served["cores"]})
        print(f"  round {r + 1}/{rounds}: ceiling {ceil:.1f} ({best}), served {served['throughput_rps']}",
              flush=True)
    ratios = sorted(r["ratio"] for r in out)
    return {"layouts": [lay.name for lay in layouts], "concurrency": concurrency, "rounds": out,
            "median_ratio": round(float(np.median(ratios)), 3), "min_ratio": ratios[0], "max_ratio": ratios[-1],
            "median_per_core_ratio": round(float(np.median([r["per_core_ratio"] for r in out])), 3)}
