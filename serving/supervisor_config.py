"""How closely the supervisor (serving/supervisor.py) watches tritonserver, how patiently it restarts it, how it
calibrates and whether it takes rollouts: its configuration, checked field by field."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from serving.plan import DEFAULT_BUDGET_S


@dataclass(frozen=True)
class SupervisorConfig:
    """How closely to watch and how patiently to restart. Defaults: detect within ~0.2 s, restart at once, then
    after 0.5 s, 1 s, 2 s, ... (at most 10 s) while restarts keep coming within a minute, give up after 5 of them,
    drain for at most 12 s."""

    poll_s: float = 0.2
    backoff_s: float = 0.5
    backoff_max_s: float = 10.0
    crash_loop_restarts: int = 5
    crash_loop_window_s: float = 60.0
    drain_timeout_s: float = 12.0
    # on stop, seconds between answering not-ready and refusing new calls: health-checking proxies and endpoint
    # controllers (HAProxy's check, a Kubernetes readiness probe) take the replica out of rotation while it still
    # serves, so callers that cannot retry see no refusal. 0: refuse at once
    drain_grace_s: float = 0.0
    start_timeout_s: float = 180.0
    health_port: int | None = None  # supervisor's /metrics, /ready, /live (None: not served)
    calibrate: bool = True  # measure at start and serve the derived limits (False: the exported config as it is)
    # where a start stores its plan, for the next start on the same machine facts (None: next to the runtime folder)
    calibration_cache: Path | None = None
    budget_s: float = DEFAULT_BUDGET_S  # latency budget of a request (queued + computed)
    # the deployment's runtime, pinned (None: the one the export chose); never re-decided per start: it decides pixels
    runtime: str | None = None
    # the deployment's precision, pinned (None: the one the export chose, config.pbtxt's `precision`)
    precision: str | None = None
    # the Unix socket where `python -m serving rollout | rollback | versions` reach this supervisor
    # (serving/control.py); None: no rollouts (the server then runs without model control)
    control_socket: Path | None = None

    def __post_init__(self) -> None:
        for name, ok, want in (("budget_s", self.budget_s > 0, "> 0"), ("poll_s", self.poll_s > 0, "> 0"),
                               ("backoff_s", self.backoff_s > 0, "> 0"),
                               ("backoff_max_s", self.backoff_max_s >= self.backoff_s,
                                f">= backoff_s ({self.backoff_s!r})"),
                               ("crash_loop_restarts", self.crash_loop_restarts >= 0, ">= 0"),
                               ("drain_timeout_s", self.drain_timeout_s > 0, "> 0"),
                               ("drain_grace_s", self.drain_grace_s >= 0, ">= 0")):
            if not ok:
                raise ValueError(f"SupervisorConfig.{name} must be {want}, got {getattr(self, name)!r}")
