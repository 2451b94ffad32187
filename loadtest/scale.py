"""Scale-out on loopback: N replicas, load through one client target and through the proxy, a replica killed and
another restarted mid-run; per-replica share, throughput, p50/p95 and failures (`python -m loadtest scale`).

On one small machine the replicas share the same cores, so more replicas add no throughput here: what this shows
is the split (every replica gets its share of the calls) and the failover (a lost replica costs the callers nothing,
a restarted one gets traffic again), not a speed-up. On a cluster each replica brings its own cores and the same
split turns into capacity.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from loadtest.callers import Callers
from loadtest.replicas import ReplicaProcess, client_target, served
from serving.process import free_port


@dataclass(frozen=True)
class ScaleConfig:
    repository: Path = Path("model_repository")
    replicas: int = 3
    callers: int = 8
    phase_s: float = 60.0  # each of the two phases; the kill at 1/4, the restart once the killed one is gone
    log_dir: Path = Path("reports") / "scale"
    # no response cache: the plain callers repeat their request, and hits would measure the cache, not the replicas
    serving_args: tuple[str, ...] = ("--drain-grace", "1.0", "--response-cache-mb", "0")
    precision: str = "f32"  # every replica's (`python -m serving --precision`)

    def __post_init__(self) -> None:
        for name, ok, want in (("replicas", self.replicas >= 2, ">= 2"), ("callers", self.callers >= 1, ">= 1"),
                               ("phase_s", self.phase_s >= 6, ">= 6 (seconds per phase)")):
            if not ok:
                raise ValueError(f"ScaleConfig.{name} must be {want}, got {getattr(self, name)!r}")


@dataclass
class Tracker:
    """Per-replica served counts over time, counting across restarts (a restarted server starts again from 0)."""

    replicas: list[ReplicaProcess]
    totals: dict[str, float] = field(default_factory=dict)
    _last: dict[str, float] = field(default_factory=dict)

    def sample(self) -> dict[str, float]:
        now = served(self.replicas)
        for k, v in now.items():
            last = self._last.get(k, 0.0)
            grew = v - last if v >= last else v  # a counter that went down is a new process
            self.totals[k] = self.totals.get(k, 0.0) + grew
            self._last[k] = v
        return dict(self.totals)


def _latency(records) -> dict[str, float]:
    ok = [1e3 * (r.t1 - r.t0) for r in records if r.outcome == "OK"]
    if not ok:
        return {"p50_ms": float("nan"), "p95_ms": float("nan")}
    return {"p50_ms": round(float(np.percentile(ok, 50)), 2), "p95_ms": round(float(np.percentile(ok, 95)), 2)}


def _phase(name: str, url: str, kind: str, cfg: ScaleConfig, reps: list[ReplicaProcess], victim: ReplicaProcess,
           log) -> dict:
    """Load for cfg.phase_s; SIGKILL `victim` at 1/4, start it again (in the background) once its ports are free."""
    import threading
    tracker = Tracker(reps)
    start_counts = dict(tracker.sample())
    events: dict[str, float] = {}
    with Callers(url, cfg.callers, kind=kind) as callers:
        t0 = time.monotonic()
        restart = None
        base = None  # the victim's total when it was ready again
        while (now := time.monotonic()) - t0 < cfg.phase_s:
            totals = tracker.sample()
            if "killed_at_s" not in events and now - t0 >= cfg.phase_s / 4:
                log(f"{name}: SIGKILL of {victim.grpc}'s process group")
                victim.kill()
                events["killed_at_s"] = round(time.monotonic() - t0, 2)
            if "killed_at_s" in events and restart is None and victim.ports_free():
                def again() -> None:
                    victim.start().wait_ready()
                    events["restarted_ready_at_s"] = round(time.monotonic() - t0, 2)
                    log(f"{name}: {victim.grpc} ready again")
                restart = threading.Thread(target=again, daemon=True)
                restart.start()
            if "restarted_ready_at_s" in events:
                if base is None:
                    base = totals[victim.grpc]
                elif "served_again_after_ready_s" not in events and totals[victim.grpc] > base:
                    events["served_again_after_ready_s"] = round(now - t0 - events["restarted_ready_at_s"], 2)
            time.sleep(0.1)
        elapsed = time.monotonic() - t0
        records = callers.between(t0, t0 + elapsed + 60)
    if restart is not None:
        restart.join(300)
    totals = tracker.sample()
    calls = {k: totals[k] - start_counts.get(k, 0.0) for k in totals}
    all_calls = sum(calls.values()) or 1.0
    outcomes: dict[str, int] = {}
    for r in records:
        outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
    return {"phase": name, "target": url, "callers": kind, "seconds": round(elapsed, 1),
            "share": {k: round(v / all_calls, 3) for k, v in calls.items()},
            "served": {k: int(v) for k, v in calls.items()},
            "throughput_rps": round(outcomes.get("OK", 0) / elapsed, 1), **_latency(records),
            "calls": len(records), "failures": len(records) - outcomes.get("OK", 0),
            "outcomes": outcomes, **events}


def run_scale(cfg: ScaleConfig, log=print) -> dict:
    from serving.machine import cpu_facts
    from serving.proxy import Proxy, ProxyConfig, Replica
    extra = (*cfg.serving_args, "--precision", cfg.precision)
    reps = [ReplicaProcess(cfg.repository, cfg.log_dir, extra=extra) for _ in range(cfg.replicas)]
    proxy = None
    try:
        for r in reps:  # one after another: each calibrates on a quiet machine
            r.start().wait_ready()
            log(f"replica {r.grpc} ready (health {r.ready_url})")
        phases = [_phase("client target (round_robin)", client_target(reps), "client", cfg, reps, reps[0], log)]
        proxy = Proxy(ProxyConfig(tuple(Replica.parse(r.proxy_spec) for r in reps),
                                  run_dir=cfg.log_dir, port=free_port(), stats_port=free_port())).start()
        log(f"proxy on {proxy.cfg.url}")
        phases.append(_phase("HAProxy, plain tritonclient", proxy.cfg.url, "raw", cfg, reps, reps[1], log))
    finally:
        if proxy is not None:
            proxy.stop()
        for r in reps:
            r.terminate()
    return {"config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
            "machine": cpu_facts(flags=False), "precision": cfg.precision, "date": time.strftime("%Y-%m-%d"),
            "phases": phases}


def markdown(report: dict) -> str:
    m = report["machine"]
    rows = [f"{len(report['phases'][0]['share'])} replicas in {report.get('precision', 'f32')}, {m['model']} "
            f"({m['isa']}, {m['cores']} cores), {report.get('date', 'undated')}:", "",
            "| load through | replica share (each) | throughput | p50 / p95 | failures / calls | kill → restart "
            "ready → served again |", "|---|---|---|---|---|---|"]
    for p in report["phases"]:
        share = ", ".join(f"{v:.0%}" for v in p["share"].values())
        rows.append(f"| {p['phase']} | {share} | {p['throughput_rps']} calls/s | {p['p50_ms']} / {p['p95_ms']} ms | "
                    f"{p['failures']} / {p['calls']} | {p.get('killed_at_s')} s → {p.get('restarted_ready_at_s')} s "
                    f"→ +{p.get('served_again_after_ready_s')} s |")
    return "\n".join(rows)
