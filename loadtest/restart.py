"""Graceful restarts of `python -m serving` under load, timed (`python -m loadtest restart`, `make bench-restart`).

One server process on loopback (calibrated at start, its own stored plan), 8 callers using the project's client at
its defaults; each round SIGTERMs the process (the drain), starts the same command again on the same ports and
waits for its `/ready`. Reported per round: drain, start and SIGTERM -> ready seconds, and the callers' failures,
in a CPU condition of loadtest/cpu.py (unpinned, or slowed-core: the server on a core shared with a busy loop, the
condition of CI's slowed test pass).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from loadtest.callers import Callers
from loadtest.cpu import CONDITIONS, busy_loops, condition, pinned_process
from loadtest.replicas import ReplicaProcess
from serving.machine import cpu_facts


@dataclass(frozen=True)
class RestartConfig:
    repository: Path = Path("model_repository")
    rounds: int = 5
    callers: int = 8
    settle_s: float = 3.0  # load before each SIGTERM and after each ready
    conditions: tuple[str, ...] = ("unpinned", "slowed-core")
    log_dir: Path = field(default_factory=lambda: Path("reports") / "restart")

    def __post_init__(self) -> None:
        for name, ok, want in (("rounds", self.rounds >= 1, ">= 1"), ("callers", self.callers >= 1, ">= 1"),
                               ("settle_s", self.settle_s > 0, "> 0")):
            if not ok:
                raise ValueError(f"RestartConfig.{name} must be {want}, got {getattr(self, name)!r}")
        bad = [c for c in self.conditions if c not in CONDITIONS]
        if bad or not self.conditions:
            raise ValueError(f"RestartConfig.conditions: unknown condition(s) {bad or list(self.conditions)}; expected "
                             f"some of {list(CONDITIONS)}")
        if not (Path(self.repository) / "sketchygan" / "config.pbtxt").is_file():
            raise ValueError(f"{self.repository} holds no sketchygan/config.pbtxt (run `make export`)")


def _restarts(cfg: RestartConfig, cond: str, log: Callable[[str], None]) -> dict:
    c = condition(cond)
    log_dir = Path(cfg.log_dir) / cond
    plan = log_dir / "calibration.json"
    plan.unlink(missing_ok=True)  # the first start measures in this condition; the restarts serve what it stored
    extra = ["--calibration-cache", str(plan)] + (["--cpus", ",".join(map(str, c.server_cpus))] if c.server_cpus
                                                   else [])
    server = ReplicaProcess(cfg.repository, log_dir, extra=tuple(extra))
    rounds = []
    with busy_loops(c.busy_loops, c.server_cpus), pinned_process(c.load_cpus):
        server.start().wait_ready()
        try:
            with Callers(server.grpc, cfg.callers) as callers:
                for k in range(cfg.rounds):
                    time.sleep(cfg.settle_s)
                    t0 = time.monotonic()
                    rc = server.terminate()
                    t1 = time.monotonic()
                    server.start().wait_ready()
                    t2 = time.monotonic()
                    rounds.append({"drain_s": round(t1 - t0, 3), "start_s": round(t2 - t1, 3),
                                   "sigterm_to_ready_s": round(t2 - t0, 3), "exit_code": rc})
                    log(f"restart: {cond} round {k + 1}: SIGTERM -> ready {t2 - t0:.2f} s "
                        f"(drain {t1 - t0:.2f} s, start {t2 - t1:.2f} s)")
                time.sleep(cfg.settle_s)
            records = callers.records
        finally:
            server.kill()
    failed = [r.detail for r in records if r.outcome != "OK"]
    totals = [r["sigterm_to_ready_s"] for r in rounds]
    return {"condition": asdict(c), "rounds": rounds, "calls": len(records), "failures": len(failed),
            "failure_messages": failed[:10], "sigterm_to_ready_s": {
                "min": min(totals), "median": round(statistics.median(totals), 3), "max": max(totals)}}


def run_restarts(cfg: RestartConfig, log: Callable[[str], None] = print) -> dict:
    return {"cpu": cpu_facts(flags=False), "config": {**asdict(cfg), "repository": str(cfg.repository),
                                                      "log_dir": str(cfg.log_dir)},
            "conditions": {cond: _restarts(cfg, cond, log) for cond in cfg.conditions}}


def markdown(report: dict) -> str:
    cpu = report["cpu"]
    rows = [f"CPU: {cpu['model']} ({cpu['isa']}, {cpu['cores']} cores)", "",
            "| condition | rounds | SIGTERM -> ready (s), min / median / max | drain (s), median | calls | failures |",
            "|---|---|---|---|---|---|"]
    for name, r in report["conditions"].items():
        t = r["sigterm_to_ready_s"]
        drain = statistics.median(x["drain_s"] for x in r["rounds"])
        rows.append(f"| {name} | {len(r['rounds'])} | {t['min']:.2f} / {t['median']:.2f} / {t['max']:.2f} | "
                    f"{drain:.2f} | {r['calls']} | {r['failures']} |")
    return "\n".join(rows) + "\n"
