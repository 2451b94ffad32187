"""Tables and the plot of the serving benchmark (loadtest/sweep.py)."""
from __future__ import annotations

import json
from pathlib import Path

from triton_repo.tables import md_table


def plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, pts in report["sweep"].items():
        ax.plot([p["throughput_rps"] for p in pts], [p["p95_ms"] for p in pts], "o-", label=f"{name} (p95)")
        for p in pts:
            ax.annotate(str(p["concurrency"]), (p["throughput_rps"], p["p95_ms"]), fontsize=7)
    for (rt, c), style in zip(report["ceiling"]["runtimes"].items(), ("--", ":")):
        ax.axvline(c["best_images_per_s"], ls=style, c="gray", label=f"{rt} in-process ceiling ({c['best']}, scan)")
    ax.set_xlabel("throughput (requests/s, 1 image each)")
    ax.set_ylabel("p95 latency (ms)")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("SketchyGAN on Triton (CPU), labels = concurrency")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _cores(p: dict) -> str:
    c = p.get("cores", {})
    return " / ".join(str(c.get(k, "-")) for k in ("loadgen", "tritonserver", "triton_python_backend_stub"))


def markdown(report: dict) -> str:
    """The sweep report's tables, as pasted into docs/benchmarks.md."""
    ceil = report["ceiling"]
    out = []
    if "cpu" in report:
        cpu = report["cpu"]
        out += [f"Precision **{report['precision']}** (OpenVINO configs and ceilings; onnxruntime computes f32), "
                f"{cpu['model']} ({cpu['isa']}, {cpu['cores']} cores), {report['date']}.", ""]
    out += ["**In-process ceiling scan** (images/s, one window each):", ""]
    out += md_table(["layout", "images/s"], [[k, v] for k, v in ceil["images_per_s"].items()])
    out += ["", "**Config grid** (cores = load generator / tritonserver / backend stubs):", ""]
    out += md_table(["config", "clients", "req/s", "p50 ms", "p95 ms", "avg batch", "cores"],
                    [[k, p["concurrency"], p["throughput_rps"], p["p50_ms"], p["p95_ms"], p["avg_batch"], _cores(p)]
                     for k, pts in report["grid"].items() for p in pts])
    out += ["", f"Chosen: **{report['tuned']['name']}** (export default: {report['tuned']['is_export_default']})", "",
            "**Concurrency sweep**:", ""]
    out += md_table(["config", "clients", "req/s", "p50 ms", "p95 ms", "p99 ms", "avg batch", "client−server ms",
                     "cores"],
                    [[name, p["concurrency"], p["throughput_rps"], p["p50_ms"], p["p95_ms"], p["p99_ms"],
                      p["avg_batch"], p["client_overhead_ms"], _cores(p)]
                     for name, pts in report["sweep"].items() for p in pts])
    sat = report["saturation"]
    out += ["", f"**Served / ceiling** (the server at {sat['concurrency']} clients and each runtime's best in-process "
            "layout of the scan's top three, back to back):", ""]
    out += md_table(["round", "runtime", "ceiling layout", "ceiling img/s", "ceiling cores", "served req/s", "ratio",
                     "per-core ratio", "avg batch", "server cores"],
                    [[i + 1, rt, c["layout"], c["images_per_s"], c["cores"], r["served_rps"], c["ratio"],
                      c["per_core_ratio"], r["avg_batch"], _cores(r)]
                     for i, r in enumerate(sat["rounds"]) for rt, c in r["ceilings"].items()])
    out += [""] + [f"- {rt}: median {s['median_ratio']} (range {s['min_ratio']}–{s['max_ratio']}), per core "
                   f"{s['median_per_core_ratio']}; unpaired (best sweep point / scan): "
                   f"{report['served_over_ceiling_unpaired'][rt]}" for rt, s in sat["by_runtime"].items()]
    if report.get("goals"):
        out += ["", "**Goals** (ratios from this run): " + ", ".join(f"{k} {v}" for k, v in report["goals"].items())]
    lc = report["locust_cross_check"]
    out += ["", "**Locust cross-check** at 8 users / clients: load generator "
            f"{lc['loadgen']['throughput_rps']} req/s (p50 {lc['loadgen']['p50_ms']} ms), Locust "
            f"{lc['locust']['throughput_rps']} req/s (p50 {lc['locust']['p50_ms']} ms, "
            f"{lc['locust']['failures']} failures)"]
    return "\n".join(out)


def write_report(report: dict, out: str | Path, name: str, markdown=None) -> None:
    """`<out>/<name>.json` and, given `markdown`, `<out>/<name>.md` (`markdown(report)`); the table printed (the JSON
    without one)."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    data = json.dumps(report, indent=2)
    (folder / f"{name}.json").write_text(data + "\n")
    text = data
    if markdown is not None:
        text = markdown(report).rstrip("\n")
        (folder / f"{name}.md").write_text(text + "\n")
    print(text)


def precision_stem(name: str, precision: str) -> str:
    """A report's file name for a precision: `name` for float32 (the default deployment), `name_bf16` beside it."""
    return name if precision == "f32" else f"{name}_{precision}"
