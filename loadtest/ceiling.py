"""The in-process ceiling: the served ONNX run by ONNX Runtime or OpenVINO in this process, no server, on the same
cores; the runtime table (every runtime x layout x batch size, interleaved rounds); and served / ceiling measured
back to back so that the machine's drifts cancel."""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loadtest.loadgen import run_load
from triton_repo.precision import DEFAULT_PRECISION
from triton_repo.runtimes import CPU_RUNTIMES as RUNTIMES
from triton_repo.runtimes import ov_default_precision, random_inputs, runner

_SHORT = {"onnxruntime": "ort", "openvino": "ov"}


@dataclass(frozen=True)
class Layout:
    """An in-process layout: `sessions` sessions (ORT) or compiled models (OpenVINO) of `threads` threads each, each
    run on its own Python thread at a fixed batch size, so the sessions run in parallel."""
    sessions: int
    threads: int
    batch: int
    runtime: str = "onnxruntime"
    pinned: bool = False  # OpenVINO only: bind its threads to cores (ENABLE_CPU_PINNING)
    precision: str | None = DEFAULT_PRECISION  # OpenVINO only: None = the plugin's default (bf16 where native)
    dynamic: bool = False  # OpenVINO only: the graph as exported (dynamic batch) instead of model.py's static pieces

    @property
    def name(self) -> str:
        return f"{_SHORT[self.runtime]}_{self.sessions}x{self.threads}thread{'s' if self.threads > 1 else ''}" \
               f"{'_pinned' if self.pinned else ''}{self._precision_tag}{'_dynamic' if self.dynamic else ''}" \
               f"_batch{self.batch}"

    @property
    def _precision_tag(self) -> str:
        if self.runtime != "openvino" or self.precision == DEFAULT_PRECISION:
            return ""
        return "_cpudefault" if self.precision is None else f"_{self.precision}"

    def measure(self, onnx_path: Path, contract, seconds: float) -> tuple[float, float]:
        """(images/s, cores this process kept busy) over `seconds` after one warm-up run per session."""
        runs = [runner(self.runtime, onnx_path, self.threads, self.pinned, self.precision, self.dynamic)
                for _ in range(self.sessions)]
        x = random_inputs(self.batch, contract.resolution, contract.noise_dim, contract.num_classes)
        for run in runs:
            run(*x)
        counts = [0] * self.sessions
        stop = threading.Event()

        def work(i: int) -> None:
            while not stop.is_set():
                runs[i](*x)
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


def two_core_layouts(runtime: str, batches: tuple[int, ...] = (1, 4, 8, 16, 32),
                     precision: str = DEFAULT_PRECISION) -> list[Layout]:
    """The layouts that use the 2 cores: 2 sessions x 1 thread and 1 session x 2 threads, at each batch size
    (`precision` applies to OpenVINO; onnxruntime computes float32)."""
    precision = precision if runtime == "openvino" else DEFAULT_PRECISION
    return [Layout(s, t, b, runtime, precision=precision) for s, t in ((2, 1), (1, 2)) for b in batches]


def ceiling(onnx_path: Path, contract, seconds: float = 4.0, top: int = 3,
            runtimes: tuple[str, ...] = RUNTIMES, precision: str = DEFAULT_PRECISION) -> dict:
    """In-process images/s of every runtime over `two_core_layouts` (OpenVINO in `precision`), one short window
    each; per runtime, the `top` layouts go on to the paired rounds (one window is noisy, so the rounds take the best
    of several)."""
    out: dict = {"images_per_s": {}, "runtimes": {}}
    for rt in runtimes:
        layouts = two_core_layouts(rt, precision=precision)
        rates = {lay.name: lay.measure(onnx_path, contract, seconds)[0] for lay in layouts}
        ranked = sorted(layouts, key=lambda lay: rates[lay.name], reverse=True)
        out["images_per_s"] |= {k: round(v, 2) for k, v in rates.items()}
        out["runtimes"][rt] = {"best": ranked[0].name, "best_images_per_s": round(rates[ranked[0].name], 2),
                               "top_layouts": [dataclasses.asdict(lay) for lay in ranked[:top]]}
    return out


def runtime_table(onnx_path: Path, contract, seconds: float = 4.0, rounds: int = 3,
                  layouts: list[Layout] | None = None) -> dict:
    """images/s of every layout (default: both runtimes x `two_core_layouts`), each measured once per round and
    visited in turn so that the machine's drifts hit all alike; the median of the rounds is the figure."""
    layouts = layouts or ([lay for rt in RUNTIMES for lay in two_core_layouts(rt)]
                          + [dataclasses.replace(lay, pinned=True) for lay in two_core_layouts("openvino")]
                          + [dataclasses.replace(lay, precision=None) for lay in two_core_layouts("openvino")
                             if lay.sessions == 2])
    windows: dict[str, list[float]] = {lay.name: [] for lay in layouts}
    cores: dict[str, list[float]] = {lay.name: [] for lay in layouts}
    for r in range(rounds):
        print(f"  round {r + 1}/{rounds}: {len(layouts)} layouts x {seconds:g} s", flush=True)
        for lay in layouts:
            rate, c = lay.measure(onnx_path, contract, seconds)
            windows[lay.name].append(rate)
            cores[lay.name].append(c)
    rows = [{**dataclasses.asdict(lay), "name": lay.name,
             "images_per_s": round(float(np.median(windows[lay.name])), 1),
             "windows": [round(w, 1) for w in windows[lay.name]],
             "cores": round(float(np.median(cores[lay.name])), 3)} for lay in layouts]
    from serving.machine import cpu_facts
    return {"seconds": seconds, "rounds": rounds, "cpu": cpu_facts(), "openvino_default_precision":
            ov_default_precision(), "rows": rows}


def runtime_markdown(table: dict) -> str:
    """The runtime table as docs/benchmarks.md shows it: one row per runtime x layout, one column per batch size."""
    from triton_repo.tables import md_table
    batches = sorted({r["batch"] for r in table["rows"]})
    def key(r: dict) -> tuple:
        return r["runtime"], r["sessions"], r["threads"], r["pinned"], r.get("precision", DEFAULT_PRECISION)
    keys = list(dict.fromkeys(key(r) for r in table["rows"]))
    by = {(*key(r), r["batch"]): r["images_per_s"] for r in table["rows"]}
    label = {(rt, s, t, p, pr): f"{rt}, {s} {'session' if rt == 'onnxruntime' else 'model'}{'s' if s > 1 else ''} × "
             f"{t} thread{'s' if t > 1 else ''}{', pinned' if p else ''}"
             f"{', default precision' if rt == 'openvino' and pr is None else ''}"
             for rt, s, t, p, pr in keys}
    cpu = table.get("cpu") or {}
    head = f"CPU: {cpu.get('model', '?')} ({cpu.get('isa', '?')}, {cpu.get('cores', '?')} cores)" if cpu else ""
    if table.get("openvino_default_precision"):
        head += f"; OpenVINO's default precision here: {table['openvino_default_precision']}"
    head += "\n\n" if head else ""
    return head + "\n".join(md_table(["runtime, layout"] + [f"batch {b}" for b in batches],
                                     [[label[k]] + [by.get((*k, b), "-") for b in batches] for k in keys]))


def paired_ratio(srv, onnx_path: Path, contract, layouts: dict[str, list[Layout]], concurrency: int, rounds: int,
                 seconds: float) -> dict:
    """served / ceiling measured back to back in each round, so that minutes-long drifts of this shared machine's
    speed cancel; one ceiling per runtime (`layouts`: runtime -> candidate layouts). Each round's ceiling of a
    runtime is the best of its layouts in that round (a max over noisy windows leans high, which makes the ratio
    conservative); the served figure is the server at `concurrency`. The median round is the figure. Each round
    also gives the per-core ratio, (served / cores the server's processes used) / (ceiling / cores the ceiling
    used): how well the server uses the CPU it gets, the load generator's share set aside."""
    out = []
    for r in range(rounds):
        row: dict = {}
        for rt, lays in layouts.items():
            rates = {lay.name: lay.measure(onnx_path, contract, max(2.0, seconds / 2)) for lay in lays}  # server idle
            best = max(rates, key=lambda k: rates[k][0])
            row[rt] = {"layout": best, "images_per_s": round(rates[best][0], 2), "cores": round(rates[best][1], 3)}
        served = run_load(srv.grpc_url, srv.metrics_url, concurrency, seconds, server_pid=srv.proc.pid).summary()
        server_cores = sum(v for k, v in served["cores"].items() if k != "loadgen")
        for rt, c in row.items():
            c["ratio"] = round(served["throughput_rps"] / c["images_per_s"], 3)
            c["per_core_ratio"] = round((served["throughput_rps"] / server_cores) / (c["images_per_s"] / c["cores"]), 3)
        out.append({"ceilings": row, "served_rps": served["throughput_rps"], "avg_batch": served["avg_batch"],
                    "cores": served["cores"]})
        print(f"  round {r + 1}/{rounds}: served {served['throughput_rps']}; ceilings "
              + ", ".join(f"{rt} {c['images_per_s']} ({c['layout']})" for rt, c in row.items()), flush=True)
    summary = {}
    for rt in layouts:
        ratios = sorted(r["ceilings"][rt]["ratio"] for r in out)
        summary[rt] = {"median_ratio": round(float(np.median(ratios)), 3), "min_ratio": ratios[0],
                       "max_ratio": ratios[-1], "median_per_core_ratio":
                           round(float(np.median([r["ceilings"][rt]["per_core_ratio"] for r in out])), 3)}
    return {"layouts": {rt: [lay.name for lay in lays] for rt, lays in layouts.items()}, "concurrency": concurrency,
            "rounds": out, "by_runtime": summary}
