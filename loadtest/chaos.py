"""Fault injection against a supervised server under load: what callers see, how fast it recovers, goodput kept.

`python -m loadtest chaos` starts a supervised tritonserver (serving/supervisor.py) on free loopback ports from a
model repository, keeps closed-loop callers running through the project's client with its default settings (10 s
deadline, retries until the deadline), and injects one fault at a time:

- `stub-kill`: SIGKILL one python-backend model process;
- `server-kill`: SIGKILL tritonserver itself;
- `graceful-restart`: drain and stop (what SIGTERM does to `python -m serving`), then start again;
- `overload`: 128 callers with 0.5 s deadlines, first the project's client (`timeout_s=0.5`), then plain
  tritonclient callers that retry at once and send their deadline as docs/reliability.md says (a gRPC deadline and
  a request timeout: the deadline less the server's compute reserve), each against a capacity measured just before
  with 16 patient callers; 2 s after each load stops, one call's latency against the idle one. Kind
  `plain-deadline-only` (in `python -m loadtest chaos`, not a target): plain callers with a gRPC deadline and no
  request timeout, which the server treats as patient.

Each run is made in a CPU condition (loadtest/cpu.py): `unpinned` (server and callers share every core),
`own-core` (the server on one core, the callers on the other) or `shared-core` (as own-core, with two busy loops on
the server's core started before it, so its start-up calibration sees a machine ~3x slower).

Beside the project's callers, two plain tritonclient callers without retries record the raw answers on the wire; a
soak (`--soak-s`) records the RSS of every server process. Results: JSON and a markdown table (docs/reliability.md).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from loadtest.callers import Callers, count_outcomes, ok_rate
from loadtest.chaos_report import markdown
from loadtest.cpu import CONDITIONS, busy_loops, condition, pinned_process, tree_cpu_seconds
from loadtest.memory import rss_growth, rss_mib
from loadtest.sketches import sketch_set
from loadtest.triton_metrics import average_batch, by_label, delta, scrape
from serving.machine import cpu_facts
from serving.process import free_port
from serving.server import ServerConfig
from serving.supervisor import Supervisor, SupervisorConfig

FAULTS = ("stub-kill", "server-kill", "graceful-restart", "overload")
# the project's client; plain tritonclient callers sending a request timeout; plain ones with a gRPC deadline only
OVERLOAD_KINDS = ("client", "plain", "plain-deadline-only")
SKIPPED = "sketchygan_requests_skipped"  # model.py's counter of requests answered without computing, by reason


@dataclass(frozen=True)
class ChaosConfig:
    repository: Path = Path("model_repository")
    faults: tuple[str, ...] = FAULTS
    clients: int = 8  # steady load during the process faults
    settle_s: float = 3.0  # load before each fault, and after its recovery
    capacity_s: float = 5.0
    capacity_clients: int = 16  # patient callers (10 s deadlines) whose goodput is the capacity
    overload_clients: int = 128
    overload_deadline_s: float = 0.5
    overload_s: float = 8.0
    # project client, then plain tritonclient callers (OVERLOAD_KINDS)
    overload_kinds: tuple[str, ...] = ("client", "plain")
    flood: bool = False  # after the overload: an open-loop flood of 4x capacity without deadlines (loadtest/flood.py)
    soak_s: float = 0.0  # 0: no soak
    log_dir: Path = Path("reports")
    condition: str = "unpinned"  # loadtest/cpu.py CONDITIONS
    calibrate: bool = True  # the server calibrates at start (serving/calibrate.py), as `python -m serving` does

    def __post_init__(self) -> None:
        bad = [f for f in self.faults if f not in FAULTS]
        if bad or not self.faults:
            raise ValueError(f"unknown fault(s) {bad or list(self.faults)}; expected some of {list(FAULTS)}")
        for name, ok, want in (("clients", self.clients >= 1, ">= 1"),
                               ("overload_clients", self.overload_clients >= 2, ">= 2"),
                               ("settle_s", self.settle_s > 0, "> 0"), ("overload_s", self.overload_s > 0, "> 0"),
                               ("overload_deadline_s", self.overload_deadline_s > 0, "> 0"),
                               ("soak_s", self.soak_s >= 0, ">= 0"), ("capacity_s", self.capacity_s > 0, "> 0")):
            if not ok:
                raise ValueError(f"ChaosConfig.{name} must be {want}, got {getattr(self, name)!r}")
        if not (Path(self.repository) / "sketchygan" / "config.pbtxt").is_file():
            raise ValueError(f"{self.repository} holds no sketchygan/config.pbtxt (run `make export`)")
        if self.condition not in CONDITIONS:
            raise ValueError(f"unknown condition {self.condition!r}; expected one of {list(CONDITIONS)}")
        bad = [k for k in self.overload_kinds if k not in OVERLOAD_KINDS]
        if bad or not self.overload_kinds:
            raise ValueError(f"overload_kinds must be some of {list(OVERLOAD_KINDS)}, got {self.overload_kinds!r}")
        if self.capacity_clients < 1:
            raise ValueError(f"capacity_clients must be >= 1, got {self.capacity_clients!r}")


@dataclass
class FaultResult:
    fault: str
    client_failures: int
    client_calls: int
    recovery_s: float | None
    goodput_before_rps: float
    goodput_during_rps: float
    wire: dict[str, int] = field(default_factory=dict)  # raw answers seen by the plain callers during the fault
    notes: str = ""


class Chaos:
    """Owns the supervised server and runs the faults in order."""

    def __init__(self, cfg: ChaosConfig) -> None:
        self.cfg = cfg
        self.condition = condition(cfg.condition)
        self.ports = (free_port(), free_port(), free_port())
        # a plan of its own per condition, measured at this run's first start (conditions differ in speed, not in
        # the machine facts a stored plan is matched on); the graceful restart then serves it at once
        self.plan_cache = Path(cfg.log_dir) / f"calibration-{cfg.condition}.json"
        self.plan_cache.unlink(missing_ok=True)
        self.sup = self._new_supervisor()
        self._stack = contextlib.ExitStack()

    def _new_supervisor(self) -> Supervisor:
        g, m, h = self.ports
        pin = {"cpus": self.condition.server_cpus} if self.condition.server_cpus else {}  # else the default
        scfg = ServerConfig(repository=Path(self.cfg.repository), grpc_port=g, metrics_port=m, **pin)
        return Supervisor(scfg, SupervisorConfig(health_port=h, calibrate=self.cfg.calibrate,
                                                 calibration_cache=self.plan_cache),
                          log_path=self.cfg.log_dir / "chaos-tritonserver.log")

    @property
    def url(self) -> str:
        return self.sup.server.grpc_url

    def start(self) -> None:
        """Enter the CPU condition (busy loops first, so that calibration sees them; this process on the load
        cores), then start the supervised server."""
        c = self.condition
        try:
            self._stack.enter_context(busy_loops(c.busy_loops, c.server_cpus))
            self._stack.enter_context(pinned_process(c.load_cpus))
            self.sup.start()
        except BaseException:
            self._stack.close()
            raise

    def stop(self) -> None:
        try:
            self.sup.stop()
        finally:
            self._stack.close()

    def run(self) -> dict:
        self.start()
        info = self._info()
        results, extra = [], {}
        try:
            for fault in self.cfg.faults:
                print(f"chaos: {fault} ...", flush=True)
                if fault == "overload":
                    res, extra["overload"] = self.overload(info)
                else:
                    res = self.process_fault(fault, info)
                results.append(res)
                print(f"chaos: {fault}: {asdict(res)}", flush=True)
            if self.cfg.soak_s:
                print(f"chaos: soak for {self.cfg.soak_s:.0f} s ...", flush=True)
                extra["soak"] = self.soak(info)
        finally:
            self.stop()
        return {"results": [asdict(r) for r in results], **extra, "supervisor_events": self.sup.events,
                "condition": asdict(self.condition), "plan": asdict(self.sup.plan) if self.sup.plan else None,
                "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self.cfg).items()}}

    def _info(self) -> tuple[int, int]:
        from sketchygan_client import SketchClient
        with SketchClient(self.url) as c:
            return c.info.resolution, c.info.noise_dim

    # ------------------------------------------------------------------ process faults

    def process_fault(self, fault: str, info: tuple[int, int]) -> FaultResult:
        res, nd = info
        settle = self.cfg.settle_s
        with Callers(self.url, self.cfg.clients, resolution=res, noise_dim=nd) as calls, \
                Callers(self.url, 2, "raw", resolution=res, noise_dim=nd, pause_after_error_s=0.01) as raw:
            time.sleep(settle)
            t_fault = time.monotonic()
            if fault == "stub-kill":
                victim = [s for s in self.sup.stubs() if s.model == "sketchygan"][-1]
                os.kill(victim.pid, signal.SIGKILL)
                self._wait_recovered(len(self.sup.events) + 1)
            elif fault == "server-kill":
                n = len(self.sup.events)
                os.kill(self.sup.server.pid, signal.SIGKILL)
                self._wait_recovered(n + 1)
            else:  # graceful-restart: what SIGTERM does to `python -m serving`, then a fresh start
                events = self.sup.events
                self.sup.stop()
                self.sup = self._new_supervisor()
                self.sup.start()
                self.sup.events[:0] = events
            t_back = time.monotonic()
            time.sleep(settle)
            t_end = time.monotonic()
        # every call that overlapped the fault window; the ones still running at t_end finished (with their
        # retries) before the callers stopped, so their outcome counts too
        during = [r for r in calls.records if r.t1 >= t_fault and r.t0 < t_end]
        before = [r for r in calls.records if t_fault - settle <= r.t1 < t_fault]
        failures = [r for r in during if r.outcome != "OK"]
        wire = count_outcomes([r for r in raw.records if t_fault <= r.t1 < t_end])
        return FaultResult(fault, len(failures), len(during), round(t_back - t_fault, 2), ok_rate(before, settle),
                           ok_rate([r for r in during if r.t1 < t_end], t_end - t_fault), wire)

    def _wait_recovered(self, n_events: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.sup.events) >= n_events and self.sup.ready:
                return
            time.sleep(0.01)
        raise RuntimeError(f"the supervisor did not recover within {timeout_s:.0f} s (state {self.sup.state})")

    # ------------------------------------------------------------------ overload

    def capacity(self, info: tuple[int, int]) -> float:
        """Goodput (req/s) of `capacity_clients` patient callers: what this server does in this condition."""
        res, nd = info
        with Callers(self.url, self.cfg.capacity_clients, resolution=res, noise_dim=nd) as cap:
            time.sleep(1.0)
            t0 = time.monotonic()
            time.sleep(self.cfg.capacity_s)
            return ok_rate(cap.between(t0, time.monotonic()), time.monotonic() - t0)

    def overload(self, info: tuple[int, int]) -> tuple[FaultResult, dict]:
        """Each overload kind against a capacity measured just before it; the result row is the first kind's."""
        detail = {"condition": self.condition.name, "idle_latency_ms": round(self._probe_latency_ms(*info, 20), 1)}
        for kind in self.cfg.overload_kinds:
            detail[kind] = self.overload_phase(info, kind, detail["idle_latency_ms"])
        if self.cfg.flood:
            detail["flood"] = self.flood_phase(info)
        first = detail[self.cfg.overload_kinds[0]]
        result = FaultResult("overload", sum(v for k, v in first["outcomes"].items() if k != "OK"),
                             sum(first["outcomes"].values()), first["back_to_normal_s"], first["capacity_rps"],
                             first["goodput_rps"], first["outcomes"] if self.cfg.overload_kinds[0] == "plain" else {},
                             "; ".join(f"{k}: goodput {detail[k]['goodput_over_capacity']} of capacity, computed for "
                                       f"callers who had gone {detail[k]['computed_for_nobody']}"
                                       for k in self.cfg.overload_kinds))
        return result, detail

    def overload_phase(self, info: tuple[int, int], kind: str, idle_ms: float) -> dict:
        """`overload_clients` callers of `kind` with `overload_deadline_s` deadlines, against the capacity measured
        just before: goodput (answers within the deadline), images computed for callers who had gone, and the
        latency of a call 2 s after the load stopped."""
        res, nd = info
        cfg = self.cfg
        capacity = self.capacity(info)
        murl = self.sup.server.metrics_url
        dl = cfg.overload_deadline_s
        before, skipped0 = scrape(murl), by_label(murl, SKIPPED, "reason")
        cpu0, w0 = tree_cpu_seconds(self.sup.server.pid), time.monotonic()
        with Callers(self.url, cfg.overload_clients, "client" if kind == "client" else "raw", deadline_s=dl,
                     resolution=res, noise_dim=nd, send_timeout=kind == "plain") as load:
            time.sleep(1.0)
            t0 = time.monotonic()
            time.sleep(cfg.overload_s)
            t1 = time.monotonic()
        t_stop = time.monotonic()
        cpu = {k: round((v - cpu0.get(k, 0.0)) / (t_stop - w0), 2)
               for k, v in tree_cpu_seconds(self.sup.server.pid).items()}
        server = delta(before, scrape(murl))
        skipped = delta(skipped0, by_label(murl, SKIPPED, "reason"))
        back_s = self._time_to_normal(res, nd, 2 * idle_ms, t_stop)
        time.sleep(max(0.0, 2.0 - (time.monotonic() - t_stop)))
        after_ms = self._probe_latency_ms(res, nd, 5)
        ok = [r for r in load.between(t0, t1) if r.outcome == "OK" and r.t1 - r.t0 <= dl]
        goodput = len(ok) / (t1 - t0)
        ok_all = sum(r.outcome == "OK" for r in load.records)
        computed = server.get("sketchygan_images_computed", 0.0)
        return {"capacity_rps": capacity, "goodput_rps": round(goodput, 1),
                "goodput_over_capacity": round(goodput / capacity, 3) if capacity else None,
                "latency_2s_after_ms": round(after_ms, 1), "back_to_normal_s": back_s,
                "images_computed": computed, "ok_answers": ok_all,
                "computed_for_nobody": round(max(0.0, computed - ok_all) / computed, 3) if computed else None,
                "skipped_by_reason": skipped, "average_batch": round(average_batch(server), 2),
                "outcomes": count_outcomes(load.records), "calls": len(load.records), "server_cores": cpu}

    def flood_phase(self, info: tuple[int, int], factor: float = 4.0) -> dict:
        """One-image requests at `factor` x the capacity measured just before, open loop, no deadlines, for
        `overload_s`: what the queue bound does when nobody gives up. (A full queue batches better than the 16
        patient callers of the capacity measurement: 2x that was still within what the server could do.)"""
        from loadtest.flood import flood
        res, nd = info
        capacity = self.capacity(info)
        f = flood(self.url, self.sup.server.metrics_url, factor * capacity, self.cfg.overload_s, res, nd)
        plan = self.sup.plan
        return {"capacity_rps": capacity, "max_queue_size": plan.max_queue_size if plan else None,
                **f.report(self.cfg.overload_s)}

    def _probe_latency_ms(self, res: int, nd: int, n: int) -> float:
        from sketchygan_client import SketchClient
        sk = sketch_set(1, res)[0]
        with SketchClient(self.url) as c:
            lat = []
            for i in range(n):
                t = time.perf_counter()
                c.generate_array(sk, 0, seed=i)
                lat.append((time.perf_counter() - t) * 1000)
        return float(np.median(lat))

    def _time_to_normal(self, res: int, nd: int, limit_ms: float, since: float, timeout_s: float = 30.0) -> float:
        """Seconds from `since` until a single request is answered within `limit_ms` (twice the idle median)."""
        from sketchygan_client import SketchClient
        sk = sketch_set(1, res)[0]
        with SketchClient(self.url) as c:
            while time.monotonic() - since < timeout_s:
                t = time.perf_counter()
                try:
                    c.generate_array(sk, 0, seed=1)
                    if (time.perf_counter() - t) * 1000 <= limit_ms:
                        return round(time.monotonic() - since, 3)
                except Exception:  # noqa: BLE001 — still overloaded: try again
                    pass
                time.sleep(0.01)
        return float("nan")

    def soak(self, info: tuple[int, int]) -> dict:
        """A steady load for `soak_s`, the server's memory sampled (loadtest/memory.py)."""
        res, nd = info
        samples = []
        with Callers(self.url, self.cfg.clients, resolution=res, noise_dim=nd) as calls:
            t0 = time.monotonic()
            while time.monotonic() - t0 < self.cfg.soak_s:
                samples.append({"t": round(time.monotonic() - t0, 1), **rss_mib(self.sup.server.pid)})
                time.sleep(min(10.0, self.cfg.soak_s / 20))
            samples.append({"t": round(time.monotonic() - t0, 1), **rss_mib(self.sup.server.pid)})
        return {"seconds": self.cfg.soak_s, "calls": count_outcomes(calls.records), "rss_mib": rss_growth(samples),
                "samples": samples}


def run_chaos(cfg: ChaosConfig, out: Path | None = None, conditions: tuple[str, ...] = ("unpinned",)) -> dict:
    """Every fault in each CPU condition, one supervised server per condition."""
    reports = {}
    for name in conditions:
        print(f"chaos: condition {name} ...", flush=True)
        reports[name] = Chaos(dataclasses.replace(cfg, condition=name)).run()
    report = {"conditions": reports, "cpu": cpu_facts()}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "chaos.json").write_text(json.dumps(report, indent=2, default=str))
        (out / "chaos.md").write_text(markdown(report))
    return report

