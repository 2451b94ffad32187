"""A rollout and a rollback under load, timed (`python -m loadtest rollout`, `make bench-rollout`).

One `python -m serving` (calibrated, the exported repository) with closed-loop callers of the project's client at
its defaults; after a quiet window, `python -m serving rollout --checkpoint NEW` and later `python -m serving
rollback`, each a real command. Reported: each command's wall time and the server's switch (new version loaded
beside the old, old unloaded), and the callers' p50/p99 and failures before, during each command, and after.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from loadtest.callers import Callers
from loadtest.replicas import ReplicaProcess
from loadtest.report import write_report
from serving.machine import cpu_facts
from triton_repo.folders import exported_onnx


@dataclass(frozen=True)
class RolloutBenchConfig:
    repository: Path = Path("model_repository")
    checkpoint: Path = Path("checkpoints/candidates/sketchygan-v4-cross-step1200.safetensors")
    callers: int = 8
    quiet_s: float = 10.0  # load before the rollout, between the two commands and after the rollback
    log_dir: Path = field(default_factory=lambda: Path("reports") / "rollout")

    def __post_init__(self) -> None:
        for name, ok, want in (("callers", self.callers >= 1, ">= 1"), ("quiet_s", self.quiet_s >= 2, ">= 2")):
            if not ok:
                raise ValueError(f"RolloutBenchConfig.{name} must be {want}, got {getattr(self, name)!r}")
        if not Path(self.checkpoint).is_file():
            raise ValueError(f"RolloutBenchConfig.checkpoint: no file {self.checkpoint}")


def _window(records, a: float, b: float) -> dict:
    calls = [r for r in records if a <= r.t0 < b]
    ok = [1e3 * (r.t1 - r.t0) for r in calls if r.outcome == "OK"]
    pct = (lambda q: round(float(np.percentile(ok, q)), 1)) if ok else (lambda q: None)
    return {"seconds": round(b - a, 2), "calls": len(calls), "failures": len(calls) - len(ok),
            "calls_per_s": round(len(ok) / (b - a), 1) if b > a else None, "p50_ms": pct(50), "p99_ms": pct(99)}


def _command(args: list[str], log) -> tuple[float, float, dict]:
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "serving", *args], capture_output=True, text=True, timeout=600)
    t1 = time.monotonic()
    if r.returncode != 0:
        raise RuntimeError(f"`python -m serving {' '.join(args)}` failed ({r.returncode}): {r.stderr[-2000:]}")
    out = json.loads(r.stdout[r.stdout.index("{\n"):])
    log(f"{args[0]}: {t1 - t0:.1f} s; server switch {out['switch_s']} s (load {out['load_s']} s)")
    return t0, t1, out


def run_rollout_bench(cfg: RolloutBenchConfig, log=print) -> dict:
    server = ReplicaProcess(cfg.repository, Path(cfg.log_dir))
    Path(cfg.log_dir).mkdir(parents=True, exist_ok=True)
    server.start().wait_ready()
    try:
        with Callers(server.grpc, cfg.callers) as callers:
            time.sleep(cfg.quiet_s)
            start = time.monotonic() - cfg.quiet_s
            r0, r1, rollout = _command(["rollout", "--checkpoint", str(cfg.checkpoint), "--url", server.grpc], log)
            time.sleep(cfg.quiet_s)
            b0, b1, rollback = _command(["rollback", "--url", server.grpc], log)
            time.sleep(cfg.quiet_s)
            end = time.monotonic()
            records = list(callers.records)
    finally:
        server.terminate()
    windows = {"before": _window(records, start + 1.0, r0), "during rollout": _window(records, r0, r1),
               "between": _window(records, r1, b0), "during rollback": _window(records, b0, b1),
               "after": _window(records, b1, end)}
    return {"config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
            "machine": cpu_facts(flags=False), "date": time.strftime("%Y-%m-%d"),
            "rollout": {"command_s": round(r1 - r0, 2), **{k: rollout[k] for k in ("load_s", "switch_s", "parity")}},
            "rollback": {"command_s": round(b1 - b0, 2), **{k: rollback[k] for k in ("load_s", "switch_s")}},
            "windows": windows, "failures": sum(w["failures"] for w in windows.values())}


def markdown(report: dict) -> str:
    m = report["machine"]
    rows = [f"{m['model']} ({m['isa']}, {m['cores']} cores), {report['date']}, {report['config']['callers']} callers "
            "(project client, defaults):", "",
            "| window | seconds | calls | failures | calls/s | p50 ms | p99 ms |", "|---|---|---|---|---|---|---|"]
    rows += [f"| {k} | {w['seconds']} | {w['calls']} | {w['failures']} | {w['calls_per_s']} | {w['p50_ms']} | "
             f"{w['p99_ms']} |" for k, w in report["windows"].items()]
    ro, rb = report["rollout"], report["rollback"]
    rows += ["", f"rollout command {ro['command_s']} s (export, checks, candidate, switch), of which the server's "
             f"switch {ro['switch_s']} s (new version loaded beside the old in {ro['load_s']} s); rollback command "
             f"{rb['command_s']} s, switch {rb['switch_s']} s (load {rb['load_s']} s)"]
    return "\n".join(rows)


def add_arguments(p) -> None:
    """`python -m loadtest rollout`'s options."""
    p.add_argument("--repository", default="model_repository")
    p.add_argument("--checkpoint", default=str(RolloutBenchConfig.checkpoint), help="the version rolled out")
    p.add_argument("--callers", type=int, default=RolloutBenchConfig.callers)
    p.add_argument("--quiet-s", type=float, default=RolloutBenchConfig.quiet_s, help="load before, between, after")
    p.add_argument("--out", default="docs/benchmarks", help="rollout.json and rollout.md go here")


def run(args) -> int:
    """Measure, write rollout.json / rollout.md, print the table; exit 1 when a call failed."""
    try:
        exported_onnx(args.repository)
        cfg = RolloutBenchConfig(Path(args.repository), Path(args.checkpoint), args.callers, args.quiet_s)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = run_rollout_bench(cfg, log=lambda m: print(m, flush=True))
    write_report(report, args.out, "rollout", markdown)
    return 0 if report["failures"] == 0 else 1
