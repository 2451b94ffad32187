"""Timing the served model.onnx: batches of 1, 2, 4, ... images with k instances at once, fitted as
`per_image·n + overhead` (`measure`, `fit`), for each runtime and layout asked for. `python -m serving.measure` is
the child process calibration starts pinned to the server's cores; it prints the costs as JSON."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from triton_repo.precision import DEFAULT_PRECISION, PRECISIONS
from triton_repo.runtimes import CPU_RUNTIMES

MEASURE_S = 6.0  # measuring time in the child, all runtimes and layouts together (imports and compiles come on top)
SIZES = (1, 2, 4, 8, 16, 32)
MIN_REPS, MIN_SIZE_S = 5, 0.1  # per batch size: at least this many runs per instance and this long
WARMUP_RUNS = 3  # untimed runs per instance before each batch size


@dataclass(frozen=True)
class Cost:
    """Seconds for one instance to compute a batch of n images, `per_image_s·n + overhead_s`, while `instances`
    instances of `threads` threads each run at once (measured points kept for the report)."""

    runtime: str
    instances: int
    threads: int
    per_image_s: float
    overhead_s: float
    points: tuple[tuple[int, float], ...] = ()
    precision: str = DEFAULT_PRECISION  # what the model computed in (the deployment's)

    def batch_s(self, n: int) -> float:
        return self.per_image_s * n + self.overhead_s

    @property
    def layout(self) -> str:
        return f"{self.instances}x{self.threads}"


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares `a·n + b` through (n, seconds), a > 0 and b >= 0 (one point: b = 0)."""
    ns = np.array([p[0] for p in points], float)
    ts = np.array([p[1] for p in points], float)
    if len(set(ns)) < 2:
        return float(ts.mean() / ns.mean()), 0.0
    a, b = np.polyfit(ns, ts, 1)
    if b < 0:  # overhead cannot be negative: refit through the origin
        a, b = float((ns @ ts) / (ns @ ns)), 0.0
    if a <= 0:
        a = float(ts.max() / ns.max())
    return float(a), float(b)


def measure(onnx_path: Path, runtime: str, instances: int, threads: int, budget_s: float,
            contract: tuple[int, int, int], seconds: float, sizes: tuple[int, ...] = SIZES,
            min_size_s: float = MIN_SIZE_S, precision: str = DEFAULT_PRECISION) -> Cost:
    """Time batches of 1, 2, 4, ... images with `instances` sessions running at once (one Python thread each),
    computing in `precision`, in at most ~`seconds`; stops growing the batch once one takes more than half the
    budget."""
    from triton_repo.runtimes import random_inputs, runner
    res, nd, nc = contract
    runs = [runner(runtime, onnx_path, threads, precision=precision) for _ in range(instances)]
    points: list[tuple[int, float]] = []
    t_end = time.monotonic() + seconds
    for n in sizes:
        x = random_inputs(n, res, nd, nc, seed=n)
        for run in runs:
            for _ in range(WARMUP_RUNS):
                run(*x)  # warm-up: first runs allocate and pick kernels
        times: list[list[float]] = [[] for _ in runs]
        stop = threading.Event()
        per_size_end = min(t_end, time.monotonic() + seconds / len(sizes))

        size_start = time.monotonic()

        def work(i: int) -> None:
            while not stop.is_set():
                t0 = time.perf_counter()
                runs[i](*x)
                times[i].append(time.perf_counter() - t0)
                now = time.monotonic()
                if len(times[i]) >= MIN_REPS and (now - size_start >= min_size_s or now > per_size_end):
                    break

        threads_ = [threading.Thread(target=work, args=(i,)) for i in range(instances)]
        for t in threads_:
            t.start()
        for t in threads_:
            t.join()
        stop.set()
        batch_s = statistics.median([s for ts in times for s in ts])
        points.append((n, batch_s))
        if batch_s > budget_s / 2 or time.monotonic() > t_end:
            break
    a, b = fit(points)
    return Cost(runtime, instances, threads, a, b, tuple((n, round(s, 6)) for n, s in points), precision)


def layouts(cores: float) -> list[tuple[int, int]]:
    """(instances, threads) to measure: one single-threaded instance per usable core, and, with several cores, one
    instance using them all."""
    k = max(1, int(cores + 0.5))
    return [(k, 1)] + ([(1, k)] if k > 1 else [])


def run_measurements(onnx_path: Path, contract: tuple[int, int, int], cores: float, budget_s: float,
                     seconds: float = MEASURE_S, only: tuple[str, int, int] | None = None,
                     sizes: tuple[int, ...] = SIZES, min_size_s: float = MIN_SIZE_S,
                     runtimes: tuple[str, ...] = CPU_RUNTIMES,
                     precision: str = DEFAULT_PRECISION) -> tuple[list[Cost], dict[str, str]]:
    """Every layout of `runtimes` (or `only` one runtime and layout) computing in `precision`, in this process (what
    the child of `calibrate` runs); also the runtimes that failed, with why."""
    combos = [only] if only else [(r, k, t) for r in runtimes for k, t in layouts(cores)]
    out, failed = [], {}
    for runtime, k, t in combos:
        if runtime in failed:
            continue
        try:
            out.append(measure(onnx_path, runtime, k, t, budget_s, contract, seconds / len(combos), sizes,
                               min_size_s, precision))
        except Exception as e:  # noqa: BLE001 — a runtime that is missing or cannot run this model is no candidate
            failed[runtime] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
    return out, failed


def main(argv: list[str] | None = None) -> int:
    """The measuring child (`calibrate` starts it pinned to the server's cores): prints the costs as JSON."""
    ap = argparse.ArgumentParser(prog="python -m serving.measure")
    ap.add_argument("--onnx", type=Path, required=True)
    ap.add_argument("--contract", required=True, help="resolution,noise_dim,num_classes")
    ap.add_argument("--cores", type=float, required=True)
    ap.add_argument("--budget-s", type=float, required=True, help="latency budget: batches past half of it end a run")
    ap.add_argument("--seconds", type=float, default=MEASURE_S)
    ap.add_argument("--only", help="RUNTIME:IxT, one runtime and layout (the quick check of a stored plan)")
    ap.add_argument("--runtimes", default=",".join(CPU_RUNTIMES), help="runtimes to measure, comma list")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="batch sizes, comma list")
    ap.add_argument("--min-size-s", type=float, default=MIN_SIZE_S, help="time each batch size at least this long")
    ap.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION, help="what the model computes in")
    a = ap.parse_args(argv)
    contract = tuple(int(v) for v in a.contract.split(","))
    only = None
    if a.only:
        runtime, layout = a.only.split(":")
        k, t = layout.split("x")
        only = (runtime, int(k), int(t))
    costs, failed = run_measurements(a.onnx, contract, a.cores, a.budget_s, a.seconds, only,
                                     tuple(int(n) for n in a.sizes.split(",")), a.min_size_s,
                                     tuple(a.runtimes.split(",")), a.precision)
    print(json.dumps({"costs": [asdict(c) for c in costs], "failed": failed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
