"""`python -m loadtest precision` (`make bench-precision`): a float32 and a bfloat16 deployment of one repository, each
calibrated in its own precision as `python -m serving --precision` does, served side by side (both servers up, the
same closed-loop load sent to each in turn for interleaved rounds) and, in the same rounds, each one's in-process rate:
its plan's layout at the batch its served load forms, and the same layout on the graph as exported (dynamic batch,
what model.py ran before it compiled static pieces).

Two placements: `shared` — server, load generator and the in-process run all on every core, as a 2-core machine
serves; `isolated` — the server (and the in-process run) on the last core, the load generator on the others, so that
served / in process measures what serving costs rather than what the load generator takes. Reports bf16 / f32 served,
served / in process per precision and placement, and static / dynamic in process. Needs a CPU with native bfloat16."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loadtest.ceiling import Layout
from loadtest.loadgen import LoadResult, run_load
from loadtest.report import write_report
from loadtest.sweep import start_servers
from serving.calibrate import calibrate, write_served_repository
from serving.machine import cpu_facts, cpu_model_and_flags
from serving.plan import DEFAULT_BUDGET_S
from triton_repo.folders import exported_onnx
from triton_repo.precision import PRECISIONS, refusal
from triton_repo.tables import md_table


@dataclass(frozen=True)
class Placement:
    """Which cores the server (with the in-process run) and the load generator compute on; None: every core."""
    name: str
    server_cpus: tuple[int, ...] | None = None
    load_cpus: tuple[int, ...] | None = None


def placements() -> list[Placement]:
    """`shared`, and `isolated` where this process may use at least 2 cores."""
    cores = tuple(sorted(os.sched_getaffinity(0)))
    out = [Placement("shared")]
    if len(cores) >= 2:
        out.append(Placement("isolated", cores[-1:], cores[:-1]))
    return out


@contextlib.contextmanager
def _on(cpus: tuple[int, ...] | None):
    """This thread, and the threads it starts inside the block, on `cpus` (Linux affinity is per thread)."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _measure(repository: Path, contract, where: Placement, concurrency: int, seconds: float, rounds: int,
             budget_s: float, dynamic: bool) -> dict:
    """One placement: per precision its plan, served summary (pooled over the rounds), in-process images/s (median of
    the rounds; on the dynamic-batch graph too when `dynamic`) and served / in process."""
    onnx = repository / "sketchygan" / "1" / "model.onnx"
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        plans, repos = {}, {}
        for p in PRECISIONS:
            print(f"[{where.name}] calibrating in {p} ...", flush=True)
            plans[p] = calibrate(repository, budget_s, cpus=where.server_cpus, runtime="openvino", precision=p)
            print(f"  {plans[p].summary()}", flush=True)
            repos[p] = write_served_repository(repository, Path(tmp) / p, plans[p])
        servers = start_servers(stack, repos, where.server_cpus)
        layouts = {p: Layout(plan.instances, plan.threads, max(1, min(plan.batch_limit, concurrency // plan.instances)),
                             "openvino", precision=p) for p, plan in plans.items()}
        served: dict[str, list] = {p: [] for p in PRECISIONS}
        inproc: dict[str, list[float]] = {p: [] for p in PRECISIONS}
        graph: dict[str, list[float]] = {p: [] for p in PRECISIONS}
        for r in range(rounds):
            print(f"  [{where.name}] round {r + 1}/{rounds}: {concurrency} clients, then in process, for each of "
                  f"{', '.join(PRECISIONS)}", flush=True)
            for p, srv in servers.items():
                with _on(where.load_cpus):
                    served[p].append(run_load(srv.grpc_url, srv.metrics_url, concurrency, seconds,
                                              server_pid=srv.proc.pid))
                with _on(where.server_cpus):
                    inproc[p].append(layouts[p].measure(onnx, contract, seconds)[0])
                    if dynamic:
                        graph[p].append(dataclasses.replace(layouts[p], dynamic=True).measure(onnx, contract,
                                                                                             seconds)[0])
    rows = {}
    for p in PRECISIONS:
        s = LoadResult.pooled(served[p]).summary()
        rate = float(np.median(inproc[p]))
        rows[p] = {"plan": {k: getattr(plans[p], k) for k in ("runtime", "precision", "instances", "threads",
                                                                "batch_limit", "rate_rps", "per_image_s",
                                                                "overhead_s")},
                   "served": s, "in_process": {"layout": layouts[p].name, "images_per_s": round(rate, 1),
                                               "windows": [round(w, 1) for w in inproc[p]]},
                   "served_over_in_process": round(s["throughput_rps"] / rate, 3)}
        if dynamic:
            rate_dynamic = float(np.median(graph[p]))
            rows[p]["in_process"].update(dynamic_graph_images_per_s=round(rate_dynamic, 1),
                                         dynamic_graph_windows=[round(w, 1) for w in graph[p]])
            rows[p]["static_over_dynamic_in_process"] = round(rate / rate_dynamic, 3)
    return {"server_cpus": where.server_cpus, "load_cpus": where.load_cpus, "rows": rows,
            "bf16_over_f32_served": round(rows["bf16"]["served"]["throughput_rps"]
                                          / rows["f32"]["served"]["throughput_rps"], 3),
            "bf16_over_f32_in_process": round(rows["bf16"]["in_process"]["images_per_s"]
                                              / rows["f32"]["in_process"]["images_per_s"], 3)}


def bench_precision(repository: Path, concurrency: int = 16, seconds: float = 8.0, rounds: int = 3,
                    budget_s: float = DEFAULT_BUDGET_S) -> dict:
    """The report: per placement (`placements`) and precision, what `_measure` finds; the dynamic-batch graph is
    measured in the shared placement only."""
    why = refusal("bf16", *cpu_model_and_flags())
    if why:
        raise ValueError(f"the precision benchmark needs a CPU with native bfloat16: {why}")
    from triton_repo.config_reader import contract_from_config, parse_config
    contract = contract_from_config(parse_config((repository / "sketchygan" / "config.pbtxt").read_text()))
    return {"machine": cpu_facts(flags=False), "concurrency": concurrency, "seconds": seconds, "rounds": rounds,
            "budget_s": budget_s,
            "placements": {w.name: _measure(repository, contract, w, concurrency, seconds, rounds, budget_s,
                                            dynamic=w.name == "shared") for w in placements()}}


def _cores(cpus) -> str:
    return "every core" if cpus is None else "core " + ", ".join(map(str, cpus))


def markdown(report: dict) -> str:
    """The report as the tables docs/benchmarks.md carries: one per placement."""
    m = report["machine"]
    lines = [f"{m['model']} ({m['isa']}, {m['cores']} cores), {report['concurrency']} clients, "
             f"{report['rounds']} interleaved rounds of {report['seconds']:g} s"]
    for name, place in report["placements"].items():
        dynamic = all("static_over_dynamic_in_process" in r for r in place["rows"].values())
        rows = [[p, f"{r['plan']['instances']}x{r['plan']['threads']}, batches <= {r['plan']['batch_limit']}",
                 f"{r['served']['throughput_rps']:.0f}", f"{r['served']['p50_ms']:.1f}",
                 f"{r['served']['p95_ms']:.1f}", f"{r['in_process']['images_per_s']:.0f} ({r['in_process']['layout']})",
                 f"{r['served_over_in_process']:.2f}"]
                + ([f"{r['in_process']['dynamic_graph_images_per_s']:.0f}",
                    f"{r['static_over_dynamic_in_process']:.2f}"] if dynamic else [])
                for p, r in place["rows"].items()]
        headers = ["precision", "plan", "served images/s", "p50 ms", "p95 ms", "in-process images/s (layout)",
                   "served / in-process"] + (["in process, dynamic-batch graph", "static / dynamic"] if dynamic else [])
        lines += ["", f"**{name}**: server and in process on {_cores(place['server_cpus'])}, load generator on "
                      f"{_cores(place['load_cpus'])}", "", *md_table(headers, rows),
                  "", f"bf16 / f32: served **{place['bf16_over_f32_served']:.2f}x**, in process "
                      f"{place['bf16_over_f32_in_process']:.2f}x"]
    return "\n".join(lines) + "\n"


def add_arguments(p) -> None:
    """`python -m loadtest precision`'s options."""
    p.add_argument("--repository", default="model_repository", help="exported CPU repository (runtime openvino)")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--seconds", type=float, default=8.0, help="measuring window per precision, load and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default="docs/benchmarks", help="folder for precision.json and precision.md")


def run(args) -> int:
    """Measure, write precision.json / precision.md, print the tables."""
    import sys

    try:
        for name, value, least in (("concurrency", args.concurrency, 1), ("rounds", args.rounds, 1),
                                   ("seconds", args.seconds, 2)):
            if value < least:
                raise ValueError(f"--{name} must be >= {least}, got {value:g}")
        exported_onnx(args.repository)
        report = bench_precision(Path(args.repository), args.concurrency, args.seconds, args.rounds)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_report(report, args.out, "precision", markdown)
    return 0
