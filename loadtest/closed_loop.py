"""Closed loops of batch callers (`python -m loadtest closed-loop`): N callers, each sending its next request when
the last one is answered, each request of a random size, against `python -m serving` (calibrated at start). Per row:
failed requests, requests the server refused, p50/p99 of the answered, images/s. Rows run twice: with the callers'
defaults (plain callers send no request timeout) and, for comparison, capping each request's queue wait at the
per-image share of the budget that the server's default queue policy applied to every request until 2026-12-06
(`before`): Triton applies the shorter of its default and a caller's timeout, so the cap reproduces the old policy
exactly, on the same server. docs/reliability.md ("Batch callers") shows the table.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from loadtest.callers import KINDS, Callers, Outcome, count_outcomes, quantile_ms
from loadtest.cpu import CONDITIONS, busy_loops, condition, pinned_process
from loadtest.replicas import ReplicaProcess
from loadtest.triton_metrics import rejected_requests
from serving.machine import cpu_facts

# (callers, smallest, largest request): the mixes of raw tritonclient batch callers that were once refused below
# capacity (docs/reliability.md, "Batch callers")
ROWS: tuple[tuple[int, int, int], ...] = ((8, 1, 1), (16, 1, 1), (2, 1, 8), (4, 1, 8), (8, 1, 8), (4, 1, 32),
                                          (8, 1, 32))


@dataclass(frozen=True)
class ClosedLoopConfig:
    repository: Path = Path("model_repository")
    rows: tuple[tuple[int, int, int], ...] = ROWS
    kinds: tuple[str, ...] = ("raw",)  # loadtest/callers.py KINDS; the client kinds add their own rows of 8 x 1..32
    client_rows: tuple[tuple[int, int, int], ...] = ((8, 1, 32),)
    seconds: float = 15.0  # per row, after 1 s of warm-up
    condition: str = "unpinned"
    compare_before: bool = True
    log_dir: Path = field(default_factory=lambda: Path("reports") / "closed-loop")

    def __post_init__(self) -> None:
        if self.seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {self.seconds!r}")
        if self.condition not in CONDITIONS:
            raise ValueError(f"unknown condition {self.condition!r}; expected one of {list(CONDITIONS)}")
        bad = [k for k in self.kinds if k not in KINDS]
        if bad or not self.kinds:
            raise ValueError(f"kinds must be some of {list(KINDS)}, got {self.kinds!r}")
        for n, lo, hi in (*self.rows, *self.client_rows):
            if n < 1 or not 1 <= lo <= hi:
                raise ValueError(f"a row is (callers >= 1, smallest >= 1, largest >= smallest), got {(n, lo, hi)!r}")
        if not (Path(self.repository) / "sketchygan" / "config.pbtxt").is_file():
            raise ValueError(f"{self.repository} holds no sketchygan/config.pbtxt (run `make export`)")


def summary(records: list[Outcome], seconds: float, images: float, refused: float) -> dict:
    """What a row reports: calls, failures (with the first message), refusals counted by the server, latency of the
    answered calls, images/s."""
    lat = sorted(r.t1 - r.t0 for r in records if r.outcome == "OK")
    bad = [r for r in records if r.outcome != "OK"]

    return {"calls": len(records), "failed": len(bad), "failed_share": round(len(bad) / len(records), 3) if records
            else None, "outcomes": count_outcomes(records), "refused_by_server": int(refused),
            "p50_ms": quantile_ms(lat, 0.5), "p99_ms": quantile_ms(lat, 0.99),
            "images_per_s": round(images / seconds, 1),
            "first_failure": bad[0].detail if bad else ""}


def run_row(url: str, metrics_url: str, kind: str, n: int, sizes: tuple[int, int], seconds: float,
            max_queue_wait_s: float | None = None) -> dict:
    """One closed loop for `seconds` (after 1 s of warm-up); calls that ended in that window are reported."""
    from loadtest.triton_metrics import scrape

    with Callers(url, n, kind, deadline_s=60.0, sizes=sizes, max_queue_wait_s=max_queue_wait_s, fresh=True) as c:
        time.sleep(1.0)
        r0, i0 = rejected_requests(metrics_url), scrape(metrics_url).get("nv_inference_count", 0.0)
        t0 = time.monotonic()
        time.sleep(seconds)
        r1, i1 = rejected_requests(metrics_url), scrape(metrics_url).get("nv_inference_count", 0.0)
        t1 = time.monotonic()
    return {"kind": kind, "callers": n, "sizes": list(sizes), **summary(c.between(t0, t1), t1 - t0, i1 - i0, r1 - r0)}


def run_closed_loops(cfg: ClosedLoopConfig, log: Callable[[str], None] = print) -> dict:
    """Every row in `cfg.condition`, on one `python -m serving` started (and calibrated) for it."""
    c = condition(cfg.condition)
    log_dir = Path(cfg.log_dir) / cfg.condition
    plan_file = log_dir / "calibration.json"
    plan_file.unlink(missing_ok=True)  # measured in this condition
    extra = ["--calibration-cache", str(plan_file)] + (["--cpus", ",".join(map(str, c.server_cpus))]
                                                       if c.server_cpus else [])
    server = ReplicaProcess(cfg.repository, log_dir, extra=tuple(extra))
    rows = []
    with busy_loops(c.busy_loops, c.server_cpus), pinned_process(c.load_cpus):
        server.start().wait_ready()
        try:
            plan = json.loads(plan_file.read_text())
            old_wait_s = old_queue_share_s(plan)
            jobs = [(k, row) for k in cfg.kinds for row in cfg.rows] + \
                [(k, row) for k in KINDS if k != "raw" and k not in cfg.kinds for row in cfg.client_rows]
            for kind, (n, lo, hi) in jobs:
                for label, cap in (("after", None), ("before", old_wait_s))[:2 if cfg.compare_before else 1]:
                    r = run_row(server.grpc, server.metrics_url, kind, n, (lo, hi), cfg.seconds, cap)
                    rows.append({**r, "policy": label})
                    log(f"closed-loop: {cfg.condition} {label} {kind} {n} x {lo}..{hi}: {r['failed']} of "
                        f"{r['calls']} failed, p99 {r['p99_ms']} ms, {r['images_per_s']} images/s")
        finally:
            server.kill()
    return {"cpu": cpu_facts(flags=False), "condition": asdict(c), "plan": plan, "old_queue_wait_s": old_wait_s,
            "seconds": cfg.seconds, "rows": rows}


def old_queue_share_s(plan: dict) -> float:
    """The default queue timeout the plan's rules gave every request until 2026-12-06: the budget less two batches
    at the batch limit (at least a quarter of the budget)."""
    from serving.plan import queue_share_s
    batch = plan["per_image_s"] * plan["batch_limit"] + plan["overhead_s"]
    return queue_share_s(plan["budget_s"], batch)


def markdown(report: dict) -> str:
    cpu, plan = report["cpu"], report["plan"]
    lines = [f"CPU: {cpu['model']} ({cpu['isa']}, {cpu['cores']} cores), condition {report['condition']['name']}; "
             f"plan: {plan['runtime']} {plan['instances']}x{plan['threads']}, batches <= {plan['batch_limit']}, "
             f"queue <= {plan['max_queue_size']}; `before` = each request's queue wait capped at "
             f"{1e3 * report['old_queue_wait_s']:.0f} ms (the old default); {report['seconds']:g} s per row", "",
             "| caller | callers | images per request | policy | failed requests | refused by the server | "
             "p50 / p99 of the answered (ms) | images/s |", "|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lo, hi = r["sizes"]
        share = f" ({100 * r['failed_share']:.1f} %)" if r["failed_share"] else ""
        lines.append(f"| {r['kind']} | {r['callers']} | {lo if lo == hi else f'{lo}–{hi}'} | {r['policy']} | "
                     f"{r['failed']} of {r['calls']}{share} | {r['refused_by_server']} | {r['p50_ms']} / {r['p99_ms']} "
                     f"| {r['images_per_s']} |")
    return "\n".join(lines) + "\n"
