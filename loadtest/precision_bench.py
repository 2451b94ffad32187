"""`python -m loadtest precision` (`make bench-precision`): a float32 and a bfloat16 deployment of one repository, each
calibrated in its own precision as `python -m serving --precision` does, served side by side (both servers up, the
same closed-loop load sent to each in turn for interleaved rounds) and, in the same rounds, each one's in-process rate:
its plan's layout at the batch its served load forms, and the same layout on the graph as exported (dynamic batch,
what model.py ran before it compiled static pieces). Reports bf16 / f32 served, served / in-process per precision and
static / dynamic in process. Needs a CPU with native bfloat16."""
from __future__ import annotations

import contextlib
import dataclasses
import tempfile
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


def bench_precision(repository: Path, concurrency: int = 16, seconds: float = 8.0, rounds: int = 3,
                    budget_s: float = DEFAULT_BUDGET_S) -> dict:
    """The report: per precision its plan, served summary (pooled over the rounds) and in-process images/s (median of
    the rounds), and the two ratios it is for: bf16 / f32 served, served / in process."""
    why = refusal("bf16", *cpu_model_and_flags())
    if why:
        raise ValueError(f"the precision benchmark needs a CPU with native bfloat16: {why}")
    from triton_repo.config_reader import contract_from_config, parse_config
    contract = contract_from_config(parse_config((repository / "sketchygan" / "config.pbtxt").read_text()))
    onnx = repository / "sketchygan" / "1" / "model.onnx"
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        plans, repos = {}, {}
        for p in PRECISIONS:
            print(f"calibrating in {p} ...", flush=True)
            plans[p] = calibrate(repository, budget_s, runtime="openvino", precision=p)
            print(f"  {plans[p].summary()}", flush=True)
            repos[p] = write_served_repository(repository, Path(tmp) / p, plans[p])
        servers = start_servers(stack, repos)
        layouts = {p: Layout(plan.instances, plan.threads, max(1, min(plan.batch_limit, concurrency // plan.instances)),
                             "openvino", precision=p) for p, plan in plans.items()}
        served: dict[str, list] = {p: [] for p in PRECISIONS}
        inproc: dict[str, list[float]] = {p: [] for p in PRECISIONS}
        dynamic: dict[str, list[float]] = {p: [] for p in PRECISIONS}
        for r in range(rounds):
            print(f"  round {r + 1}/{rounds}: {concurrency} clients, then in process, for each of "
                  f"{', '.join(PRECISIONS)}", flush=True)
            for p, srv in servers.items():
                served[p].append(run_load(srv.grpc_url, srv.metrics_url, concurrency, seconds, server_pid=srv.proc.pid))
                inproc[p].append(layouts[p].measure(onnx, contract, seconds)[0])
                dynamic[p].append(dataclasses.replace(layouts[p], dynamic=True).measure(onnx, contract, seconds)[0])
    rows = {}
    for p in PRECISIONS:
        s = LoadResult.pooled(served[p]).summary()
        rate, rate_dynamic = float(np.median(inproc[p])), float(np.median(dynamic[p]))
        rows[p] = {"plan": {k: getattr(plans[p], k) for k in ("runtime", "precision", "instances", "threads",
                                                                "batch_limit", "rate_rps", "per_image_s",
                                                                "overhead_s")},
                   "served": s, "in_process": {"layout": layouts[p].name, "images_per_s": round(rate, 1),
                                               "windows": [round(w, 1) for w in inproc[p]],
                                               "dynamic_graph_images_per_s": round(rate_dynamic, 1),
                                               "dynamic_graph_windows": [round(w, 1) for w in dynamic[p]]},
                   "served_over_in_process": round(s["throughput_rps"] / rate, 3),
                   "static_over_dynamic_in_process": round(rate / rate_dynamic, 3)}
    return {"machine": cpu_facts(flags=False), "concurrency": concurrency, "seconds": seconds, "rounds": rounds,
            "budget_s": budget_s, "rows": rows,
            "bf16_over_f32_served": round(rows["bf16"]["served"]["throughput_rps"]
                                          / rows["f32"]["served"]["throughput_rps"], 3),
            "bf16_over_f32_in_process": round(rows["bf16"]["in_process"]["images_per_s"]
                                              / rows["f32"]["in_process"]["images_per_s"], 3)}


def markdown(report: dict) -> str:
    """The report as the table docs/benchmarks.md carries."""
    m = report["machine"]
    rows = [[p, f"{r['plan']['instances']}x{r['plan']['threads']}, batches <= {r['plan']['batch_limit']}",
             f"{r['served']['throughput_rps']:.0f}", f"{r['served']['p50_ms']:.1f}", f"{r['served']['p95_ms']:.1f}",
             f"{r['in_process']['images_per_s']:.0f} ({r['in_process']['layout']})",
             f"{r['served_over_in_process']:.2f}", f"{r['in_process']['dynamic_graph_images_per_s']:.0f}",
             f"{r['static_over_dynamic_in_process']:.2f}"]
            for p, r in report["rows"].items()]
    lines = [f"{m['model']} ({m['isa']}, {m['cores']} cores), {report['concurrency']} clients, "
             f"{report['rounds']} interleaved rounds of {report['seconds']:g} s", "",
             *md_table(["precision", "plan", "served images/s", "p50 ms", "p95 ms", "in-process images/s (layout)",
                        "served / in-process", "in process, dynamic-batch graph", "static / dynamic"], rows),
             "", f"bf16 / f32: served **{report['bf16_over_f32_served']:.2f}x**, in process "
                 f"{report['bf16_over_f32_in_process']:.2f}x"]
    return "\n".join(lines) + "\n"


def add_arguments(p) -> None:
    """`python -m loadtest precision`'s options."""
    p.add_argument("--repository", default="model_repository", help="exported CPU repository (runtime openvino)")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--seconds", type=float, default=8.0, help="measuring window per precision, load and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default="docs/benchmarks", help="folder for precision.json and precision.md")


def run(args) -> int:
    """Measure, write precision.json / precision.md, print the table."""
    import sys

    try:
        if args.concurrency < 1 or args.rounds < 1 or args.seconds < 2:
            raise ValueError(f"--concurrency and --rounds must be >= 1 and --seconds >= 2, got {args.concurrency}, "
                             f"{args.rounds}, {args.seconds:g}")
        exported_onnx(args.repository)
        report = bench_precision(Path(args.repository), args.concurrency, args.seconds, args.rounds)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_report(report, args.out, "precision", markdown)
    return 0
