"""Keep a tritonserver serving: restart it when a model process dies or it crashes, drain on stop.

Triton 2.51 neither replaces a dead python-backend stub nor reports it in readiness: one killed stub leaves the
model READY while part of its requests fail for good. Unloading and reloading the model is not a safe way out:
when the stub died in the middle of a call to the server (a custom-metric update, in the backtraces seen)
tritonserver aborts soon after, typically while the model is unloaded (`boost::interprocess::lock_exception` in
its stub-monitor thread). So the supervisor watches the server's process tree every `poll_s` and
- a stub that died or was stopped (SIGSTOP) -> drains the server (the surviving instances finish the requests
  they accepted, new ones are answered UNAVAILABLE), ends it with all its model processes and starts it again:
  fresh stubs for every model, and no unload path ever runs with a dead stub;
- tritonserver exiting on its own -> restarts it;
- both count as restarts: the first in a window goes at once, later ones wait `backoff_s`, 2x, ... (at most
  `backoff_max_s`), and it gives up with a clear message after `crash_loop_restarts` within `crash_loop_window_s`;
- `stop()` -> graceful drain: not ready at once; a barrier request held by the drain model keeps Triton in its
  "stopping" state, where it finishes accepted (in-flight and queued) requests while answering new ones
  UNAVAILABLE; as soon as its metrics show the generator idle the process group is ended (Triton would otherwise
  unload the model, answering NOT_FOUND, and wait its whole exit timeout for a stub that died earlier).
Before the first start it calibrates (serving/calibrate.py): the served model is measured on the cores the server
may use and tritonserver serves a copy of the repository whose config carries the derived runtime, layout, batch
limit and queue bounds; restarts reuse that plan unless the machine (cores, CPU quota, model) changed. A plan stored
by an earlier start on the same machine facts is served at once (a graceful restart is ready in seconds) and checked
after ready, while the server is idle (serving/plan_check.py): one that no longer holds is dropped, so that the next
start measures again.
Recovery needs no model-control API. With a control socket (serving/control.py) the server runs with Triton's
explicit model control, behind the restricted key this process alone holds, so that `python -m serving rollout`
can load a new model version beside the served one and retire the old (serving/versions.py, docs/rollout.md); the
watcher then follows the model processes of the versions the config serves. Its own `/metrics`, `/ready` (JSON:
state, the serving plan, the served model versions) and `/live` are served on `health_port`.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from dataclasses import asdict
from http.server import ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge

from serving import calibrate as calibration
from serving.control import ControlServer
from serving.drain import drain
from serving.health import close_health, serve_health
from serving.plan import Plan
from serving.plan_check import StoredPlanCheck
from serving.plan_metrics import PlanMetrics
from serving.process import ServerError, check_ports_free, describe_exit
from serving.server import ServerConfig, TritonServer
from serving.stubs import Stub, stub_problem, stubs_of
from serving.supervisor_config import SupervisorConfig
from serving.versions import CANDIDATE, RolloutError, Versions
from triton_repo.contract import MODEL_NAME

log = logging.getLogger("sketchygan.supervisor")

STATES = ("starting", "ready", "recovering", "restarting", "draining", "stopped", "failed")


class Supervisor:
    """A supervised tritonserver. `start()` returns once it is ready; a background thread keeps it so until
    `stop()` (graceful drain) or until the crash-loop limit is hit (`failed` is then set with the reason)."""

    def __init__(self, server_config: ServerConfig, config: SupervisorConfig = SupervisorConfig(),
                 log_path: Path | None = None, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.server = TritonServer(server_config, log_path=log_path)
        self.registry = registry or CollectorRegistry()
        self.restarts = Counter("sketchygan_supervisor_restarts", "tritonserver restarts by the supervisor, by "
                                "what failed (stub = a model process, server = tritonserver itself) and why",
                                ["component", "cause"], registry=self.registry)
        self.ready_gauge = Gauge("sketchygan_supervisor_ready", "1 when the supervised server can serve every "
                                 "request (server up, model ready, all model processes alive, not draining)",
                                 registry=self.registry)
        self.state = "starting"
        self.failed: str | None = None
        self.events: list[dict] = []  # every recovery, for tests and reports: kind, cause, seconds, at (epoch)
        self._stubs: list[Stub] = []
        self._stop = threading.Event()
        self._stopped = threading.Event()  # set once stop() has drained and ended the server
        self._lock = threading.Lock()
        self._restarts: list[float] = []  # when each restart in the crash-loop window began (monotonic)
        self._thread: threading.Thread | None = None
        self._http: ThreadingHTTPServer | None = None
        self.source_repository = Path(server_config.repository)
        if config.control_socket is not None:
            server_config.model_control = True  # Triton's load API, behind the restricted key only this process holds
        self._control: ControlServer | None = None
        self._retiring: set[int] = set()  # model processes of generator versions taken out, still ending
        self.rollouts = Counter("sketchygan_supervisor_rollouts", "Model version switches on the running server, by "
                                "operation (rollout, rollback) and outcome (done, refused)", ["op", "outcome"],
                                registry=self.registry)
        self.version_gauge = Gauge("sketchygan_served_model_version", "The generator version new requests get",
                                   registry=self.registry)
        self.model_versions: list[int] = []  # what the config serves: noted at every start and version switch
        self.plan: Plan | None = None
        self._served: Path | None = None  # the calibrated copy of the repository tritonserver serves
        self._cache: Path | None = None  # where plans are stored for the next start
        self.check: dict | None = None  # the stored plan's check after ready: state, ratio, holds (None: not needed)
        self._check_gauge = Gauge("sketchygan_calibration_check_ratio", "A stored plan's quick re-measurement after "
                                  "start, as a ratio to its cost (> 1: slower now); it holds within 1/1.6 .. 1.6",
                                  registry=self.registry)
        self._plan_metrics = PlanMetrics(self.registry)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "Supervisor":
        ports = self.server.config.ports()
        if self.config.health_port is not None:
            ports["health"] = self.config.health_port
        check_ports_free(self.server.config.address, ports)  # before measuring anything: fail fast, name the port
        if self.config.control_socket is not None:  # as early: another live server's socket refuses this start
            self._control = ControlServer(self.config.control_socket, self._on_control)
        try:
            if self.config.health_port is not None:  # bound now (/ready: 503 "starting"): the calibration is long
                self._http = serve_health(self, self.server.config.address, self.config.health_port)
            self._prepare()
            self.server.start(timeout_s=self.config.start_timeout_s)
        except BaseException:
            if self._control is not None:
                self._control.close()
            close_health(self._http)
            raise
        self._note_versions(Versions(self.server).served())
        self._stubs = self._watched_stubs()
        self._set_state("ready")
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self._thread.start()
        if self.plan is not None and self.plan.source == "cached":
            self.check = {"state": "waiting for an idle server"}
            check = StoredPlanCheck(self.server, self.source_repository, self.plan, self._cache, self._stop,
                                    self._show_check)
            threading.Thread(target=check.run, name="plan-check", daemon=True).start()
        return self

    def stop(self) -> int | None:
        """Graceful drain, then stop; returns tritonserver's exit status (None if it was not running)."""
        self._stop.set()
        if self._control is not None:
            self._control.close()
        with self._lock:  # waits for a recovery, restart or rollout in progress to finish
            self._set_state("draining")
            if self.config.drain_grace_s and self.server.proc is not None and self.server.proc.poll() is None:
                log.info("draining: not ready; serving %.1f s more before refusing new calls",
                         self.config.drain_grace_s)
                time.sleep(self.config.drain_grace_s)
            rc = drain(self.server, self.config.drain_timeout_s)
            self._set_state("stopped")
        self._stopped.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        close_health(self._http)
        if self._served is not None:
            shutil.rmtree(self._served, ignore_errors=True)
        return rc

    def __enter__(self) -> "Supervisor":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def stubs(self) -> list[Stub]:
        return list(self._stubs)

    # ------------------------------------------------------------------ calibration

    def _prepare(self) -> None:
        """Calibrate (or reuse the plan while the machine is unchanged) and point the server at the served copy."""
        cfg = self.config
        if not cfg.calibrate:
            if self.plan is None:
                self.plan = calibration.fixed_plan(self.source_repository, cfg.budget_s)
                self._show_plan()
            return
        previous = self.plan
        cache = cfg.calibration_cache or Path(self.server.config.runtime_dir).resolve().parent / "calibration.json"
        self._cache = cache
        plan = calibration.calibrate(self.source_repository, cfg.budget_s, self.server.config.cpus, previous=previous,
                                     cache=cache, runtime=cfg.runtime, precision=cfg.precision)
        if previous is not None and plan.source == "reused":
            log.info("reusing the calibration of this start (same cores, CPU quota and model)")
            return  # the served copy already carries it
        self.plan = plan
        parent = Path(self.server.config.runtime_dir).resolve().parent
        calibration.remove_served_of_dead_processes(parent)
        served = parent / f"served-{os.getpid()}-{id(self):x}"
        ov_cache = calibration.openvino_cache(parent / "openvino-cache", plan.machine.get("onnx_sha256", "model"))
        self._served = calibration.write_served_repository(self.source_repository, served, plan,
                                                           openvino_cache=ov_cache)
        self.server.config.repository = self._served
        self._show_plan()

    def _show_plan(self) -> None:
        log.info("%s", self.plan.summary())
        self._plan_metrics.show(self.plan)

    def health(self) -> dict:
        """What `/ready` answers: the state, the plan in force and, for a stored plan, its check."""
        out = {"state": self.state, "ready": self.ready, "serving": None if self.plan is None else asdict(self.plan)}
        if self._control is not None:
            out["model_versions"] = list(self.model_versions)  # /ready is polled: no config read per probe
        if self.check is not None:
            out["plan_check"] = dict(self.check)
        return out

    def _show_check(self, state: dict) -> None:
        """The stored plan's check reached `state` (serving/plan_check.py): shown in /ready and /metrics."""
        self.check = state
        if "ratio" in state:
            self._check_gauge.set(state["ratio"])

    # ------------------------------------------------------------------ model versions (serving/versions.py)

    def _on_control(self, op: str, req: dict, progress) -> dict:
        """A request on the control socket: `versions`, or `rollout` / `promote` / `rollback` (Versions.perform), the
        watcher waiting meanwhile: the old version's model processes end on purpose."""
        versions = Versions(self.server)
        if op == "versions":
            return versions.describe()
        with self._lock:
            if self.state != "ready":
                raise RolloutError(f"the server is {self.state}, not ready: nothing changed; try again once it is")
            before, served = stubs_of(self.server.pid), {str(v) for v in versions.served()}
            try:
                result = versions.perform(op, req, progress)
            except RolloutError:
                self.rollouts.labels(op, "refused").inc()
                raise
            finally:
                # the processes of a version taken out end in their own time (Triton unloads it once its accepted
                # requests are answered), maybe after the same version number is loaded again by a rollback
                self._note_versions(versions.served())
                now = {str(v) for v in self.model_versions}
                self._retiring |= {s.pid for s in before if s.model == MODEL_NAME and s.version in served - now}
                self._stubs = self._watched_stubs()
            self.rollouts.labels(op, "done").inc()
            log.info("%s: versions %s -> %s", op, result["from"], self.model_versions)
        return {**result, **versions.describe()}

    def _note_versions(self, served: list[int]) -> None:
        self.model_versions = served
        self.version_gauge.set(max(served))

    def _watched_stubs(self) -> list[Stub]:
        """The model processes to watch: every model's, the generator's only for the versions it serves, and none of
        a version taken out (`_retiring`: they end on purpose)."""
        served = {str(v) for v in self.model_versions}
        found = stubs_of(self.server.pid)
        self._retiring &= {s.pid for s in found}  # ended ones forgotten: a pid may be used again
        return [s for s in found if s.pid not in self._retiring and s.model != CANDIDATE
                and (s.model != MODEL_NAME or s.version in served)]

    # ------------------------------------------------------------------ watching

    def _set_state(self, state: str) -> None:
        if state not in STATES:
            raise ValueError(f"unknown supervisor state {state!r}; expected one of {list(STATES)}")
        self.state = state
        self.ready_gauge.set(1 if state == "ready" else 0)

    def _watch(self) -> None:
        try:
            self._watch_loop()
        finally:
            # a server this thread restarted dies with this thread (PR_SET_PDEATHSIG): it may end only once the
            # server is drained and stopped (or given up on)
            while not self.failed and not self._stopped.wait(0.1):
                pass

    def _watch_loop(self) -> None:
        while not self._stop.wait(self.config.poll_s):
            with self._lock:
                if self._stop.is_set():
                    return
                try:
                    self._check()
                except Exception as e:  # noqa: BLE001 — the watcher must survive anything it sees
                    log.exception("supervisor check failed: %s", e)
                if self.failed:
                    return

    def _check(self) -> None:
        proc = self.server.proc
        if proc is None or proc.poll() is not None:
            why = describe_exit(proc.returncode) if proc is not None else "it did not start"
            log.error("tritonserver died unexpectedly (%s); log tail:\n%s", why, self.server.log_tail(15))
            self._restart("server", why)
            return
        dead = {s: why for s in self._stubs if (why := stub_problem(s.pid))}
        if dead:
            for stub, why in dead.items():
                log.warning("model process %s (pid %d) %s: restarting tritonserver with fresh model processes",
                            stub.instance, stub.pid, why)
            self._restart("stub", "model process " + ", ".join(sorted(set(dead.values()))),
                          dead_instances={s.instance for s in dead})

    def _record(self, kind: str, cause: str, started: float) -> None:
        took = time.monotonic() - started
        self.restarts.labels(kind, cause).inc()
        self.events.append({"kind": kind, "cause": cause, "seconds": round(took, 3), "at": time.time()})

    # ------------------------------------------------------------------ recovery

    def _restart(self, component: str, why: str, dead_instances: set[str] = frozenset()) -> None:
        """Replace the server process: drained first if it still runs (`dead_instances` left out of the wait),
        then started again; gives up after too many restarts within the crash-loop window."""
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < self.config.crash_loop_window_s] + [now]
        n = len(self._restarts)
        self._set_state("recovering" if component == "stub" else "restarting")
        if self.server.proc is not None and self.server.proc.poll() is None:
            drain(self.server, self.config.drain_timeout_s, dead_instances)
        else:
            if component == "stub" and self.server.proc is not None:
                # the server died on its own between the dead stub being seen and the drain (Triton 2.51 aborts
                # when a stub dies inside a call to it): the restart is the server's, with the server's cause
                component, why = "server", describe_exit(self.server.proc.returncode)
                log.error("tritonserver died unexpectedly (%s); log tail:\n%s", why, self.server.log_tail(15))
            self.server.stop(timeout_s=1)  # ends leftover stubs of a dead server, removes its shared memory
        if n > self.config.crash_loop_restarts:
            self._set_state("failed")  # before `failed`: whoever sees the reason sees /live and /ready say 503
            self.failed = (f"tritonserver failed {n} times within {self.config.crash_loop_window_s:g} s "
                           f"(last: {why}); giving up. See its log: {self.server.log_path}")
            log.error(self.failed)
            return
        pause = 0.0 if n == 1 else min(self.config.backoff_max_s, self.config.backoff_s * 2 ** (n - 2))
        log.warning("restarting tritonserver%s (restart %d of at most %d within %g s)",
                    f" in {pause:.1f} s" if pause else "", n, self.config.crash_loop_restarts,
                    self.config.crash_loop_window_s)
        if self._stop.wait(pause):
            return
        try:
            self._prepare()  # the same plan unless the machine changed
            self.server.start(timeout_s=self.config.start_timeout_s)
        except (ServerError, calibration.CalibrationError) as e:
            log.error("restart failed: %s", e)
            return  # the next check sees no process and counts another restart
        self._note_versions(Versions(self.server).served())  # a new served copy would serve its source's
        self._stubs = self._watched_stubs()
        self._record(component, why, now)
        log.warning("tritonserver restarted and ready after %.2f s", time.monotonic() - now)
        self._set_state("ready")
