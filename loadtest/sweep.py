"""Serving benchmark, all measured side by side in one run on one machine:

1. the in-process ceiling: the same ONNX in onnxruntime, no server, same cores, best batch size;
2. a small grid of server configs (instances x threads, queue delay) at high concurrency -> the tuned config;
3. a concurrency sweep with dynamic batching on (tuned) and off: throughput, p50/p95/p99, client - server time.
Writes `<out>/sweep.json`, `<out>/throughput_latency.png` and prints a markdown table.
"""
from __future__ import annotations

import dataclasses
import json
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loadtest.loadgen import run_load
from loadtest.locust_runner import run_locust


@dataclass(frozen=True)
class SweepConfig:
    concurrency: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    seconds: float = 8.0
    checkpoint: Path = Path("checkpoints/sketchygan-cpu.safetensors")
    out: Path = Path("docs/benchmarks")
    grid_concurrency: int = 16


def ceiling(onnx_path: Path, contract, seconds: float = 4.0) -> dict:
    """Best in-process images/s: 1 session x 2 threads at several batch sizes, and 2 sessions x 1 thread."""
    from export.onnx_export import ort_session, run_ort
    rng = np.random.default_rng(0)
    s, z = contract.resolution, contract.noise_dim

    def inputs(b):
        return (rng.integers(0, 256, (b, s, s), dtype=np.uint8), np.zeros((b, 1), np.int32),
                rng.standard_normal((b, z)).astype(np.float32))

    results = {}
    sess = ort_session(onnx_path, threads=2)
    for b in (1, 4, 8, 16, 32):
        x = inputs(b)
        run_ort(sess, *x)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            run_ort(sess, *x)
            n += b
        results[f"1x2threads_batch{b}"] = n / (time.perf_counter() - t0)
    for b in (1, 8):
        sessions = [ort_session(onnx_path, threads=1) for _ in range(2)]
        counts = [0, 0]
        stop = threading.Event()

        def work(i, b=b):
            x = inputs(b)
            while not stop.is_set():
                run_ort(sessions[i], *x)
                counts[i] += b

        ts = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in ts:
            t.join()
        results[f"2x1thread_batch{b}"] = sum(counts) / (time.perf_counter() - t0)
    best = max(results, key=results.get)
    return {"images_per_s": {k: round(v, 2) for k, v in results.items()}, "best": best,
            "best_images_per_s": round(results[best], 2)}


def locust_run(url: str, users: int, seconds: float, out: Path) -> dict:
    """Headless Locust at the same concurrency, for cross-checking the load generator."""
    row, proc = run_locust(url, users, users, f"{max(1, int(seconds))}s", out / "l", html=False, timeout_s=600)
    if proc.returncode != 0:
        raise RuntimeError(f"locust failed: {proc.stderr[-2000:]}")
    return {"users": users, "requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
            "throughput_rps": round(float(row["Requests/s"]), 2), "p50_ms": float(row["50%"]),
            "p95_ms": float(row["95%"])}


def _serve(repo: Path, fn):
    from serving.server import ServerConfig, TritonServer, free_port
    cfg = ServerConfig(repository=repo, grpc_port=free_port(), metrics_port=free_port())
    with TritonServer(cfg, log_path=repo / "server.log") as srv:
        return fn(srv)


def run_sweep(cfg: SweepConfig) -> dict:
    from export.__main__ import run_export
    from export.repository import ServingConfig
    cfg.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(cfg).items()}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def export(name: str, serving: ServingConfig) -> Path:
            repo = tmp / name
            run_export(cfg.checkpoint, repo, tmp / "gpu", ["cpu"], serving, None, 0.0)
            return repo

        base = ServingConfig()
        first = export("base", base)
        from export.repository import contract_from_config, parse_config
        contract = contract_from_config(parse_config((first / "sketchygan" / "config.pbtxt").read_text()))
        report["ceiling"] = ceiling(first / "sketchygan" / "1" / "model.onnx", contract, min(4.0, cfg.seconds / 2))
        grid = {
            "1inst_x_2thr_delay2ms": dataclasses.replace(base, instances=1, intra_op_threads=2),
            "2inst_x_1thr_delay2ms": dataclasses.replace(base, instances=2, intra_op_threads=1),
            "2inst_x_1thr_delay10ms": dataclasses.replace(base, instances=2, intra_op_threads=1,
                                                          max_queue_delay_us=10000, preferred_batch_sizes=(8, 16)),
            "2inst_x_2thr_delay2ms": dataclasses.replace(base, instances=2, intra_op_threads=2),
        }
        report["grid"] = {}
        for name, serving in grid.items():
            repo = export(name, serving)
            r = _serve(repo, lambda srv: run_load(srv.grpc_url, srv.metrics_url, cfg.grid_concurrency, cfg.seconds))
            report["grid"][name] = {**r.summary(), "serving": dataclasses.asdict(serving)}
        # best throughput among configs whose p95 is within 1.5x of the fastest config's p95
        p95_best = min(v["p95_ms"] for v in report["grid"].values())
        ok = {k: v for k, v in report["grid"].items() if v["p95_ms"] <= 1.5 * p95_best}
        tuned_name = max(ok, key=lambda k: ok[k]["throughput_rps"])
        tuned = grid[tuned_name]
        report["tuned"] = {"name": tuned_name, "serving": dataclasses.asdict(tuned)}
        report["sweep"] = {}
        for name, serving in (("batching_on", tuned), ("batching_off", dataclasses.replace(tuned,
                                                                                           dynamic_batching=False))):
            repo = export("sweep_" + name, serving)
            report["sweep"][name] = _serve(repo, lambda srv: [
                run_load(srv.grpc_url, srv.metrics_url, c, cfg.seconds).summary() for c in cfg.concurrency])
        repo = tmp / "sweep_batching_on"
        report["locust_cross_check"] = _serve(repo, lambda srv: {
            "loadgen": run_load(srv.grpc_url, srv.metrics_url, 8, cfg.seconds).summary(),
            "locust": locust_run(srv.grpc_url, 8, cfg.seconds, tmp / "locust")})
    best_served = max(p["throughput_rps"] for p in report["sweep"]["batching_on"])
    report["served_over_ceiling"] = round(best_served / report["ceiling"]["best_images_per_s"], 3)
    (cfg.out / "sweep.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, cfg.out / "throughput_latency.png")
    print(markdown(report))
    return report


def plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, pts in report["sweep"].items():
        ax.plot([p["throughput_rps"] for p in pts], [p["p95_ms"] for p in pts], "o-", label=f"{name} (p95)")
        for p in pts:
            ax.annotate(str(p["concurrency"]), (p["throughput_rps"], p["p95_ms"]), fontsize=7)
    ax.axvline(report["ceiling"]["best_images_per_s"], ls="--", c="gray", label="in-process ceiling")
    ax.set_xlabel("throughput (requests/s, 1 image each)")
    ax.set_ylabel("p95 latency (ms)")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("SketchyGAN on Triton (CPU), labels = concurrency")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(report: dict) -> str:
    lines = ["| config | concurrency | req/s | p50 ms | p95 ms | p99 ms | avg batch | client−server ms |",
             "|---|---|---|---|---|---|---|---|"]
    for name, pts in report["sweep"].items():
        for p in pts:
            lines.append(f"| {name} | {p['concurrency']} | {p['throughput_rps']} | {p['p50_ms']} | {p['p95_ms']} | "
                         f"{p['p99_ms']} | {p['avg_batch']} | {p['client_overhead_ms']} |")
    return "\n".join(lines)
