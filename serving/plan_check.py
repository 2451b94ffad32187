"""The check of a stored plan after a start that served it at once: one quick re-measurement, taken only while the
generator is idle, that keeps or drops the plan (serving/plan.py::still_holds). The check yields to serving: a
request during it ends it at once (a check that competed with serving would blame the machine for our own load, and
slow the callers), and it tries again at the next idle moment."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from serving import calibrate as calibration
from serving.drain import generator_progress
from serving.plan import CHECK_TOLERANCE, Plan
from serving.server import TritonServer

log = logging.getLogger("sketchygan.supervisor")

# idle means nothing queued, executing or newly answered for CHECK_IDLE_S; each try waits at most CHECK_WAIT_S for
# such a moment, and the check gives up after CHECK_TRIES tries
CHECK_IDLE_S, CHECK_WAIT_S, CHECK_TRIES = 2.0, 30.0, 20


@dataclass
class StoredPlanCheck:
    """Check `plan` (served by `server` from `repository`'s model) and `show` each state it reaches: a dict with
    'state' ('waiting for an idle server', 'done', 'failed', 'gave up') and, once done, 'holds' and 'ratio'. A plan
    that no longer holds is removed from `cache`, so that the next start measures the machine again; the server keeps
    serving it meanwhile (model.py follows the machine's speed anyway)."""

    server: TritonServer
    repository: Path
    plan: Plan
    cache: Path | None
    stop: threading.Event
    show: Callable[[dict], None]

    def idle_for(self, seconds: float, give_up_s: float) -> bool:
        """Wait until the generator has had nothing queued, executing or newly answered for `seconds`; False after
        `give_up_s` without such a moment, or on stop."""
        end = time.monotonic() + give_up_s
        answered, since = None, time.monotonic()
        while time.monotonic() < end and not self.stop.is_set():
            busy, now_answered = generator_progress(self.server)
            if busy != 0 or now_answered is None or now_answered != answered:
                answered, since = now_answered, time.monotonic()
            elif time.monotonic() - since >= seconds:
                return True
            self.stop.wait(0.1)
        return False

    def run(self) -> None:
        plan = self.plan
        for attempt in range(1, CHECK_TRIES + 1):
            if not self.idle_for(CHECK_IDLE_S, CHECK_WAIT_S):
                if self.stop.is_set():
                    return
                continue
            _, before = generator_progress(self.server)

            def got_work() -> bool:
                busy, answered = generator_progress(self.server)
                return self.stop.is_set() or busy != 0 or answered != before

            try:
                result = calibration.check_plan(self.repository, plan, self.server.config.cpus, got_work)
            except calibration.Interrupted:
                if self.stop.is_set():
                    return
                log.info("the stored plan's check was interrupted by requests (try %d); checking again when idle",
                         attempt)
                self.show({"state": "waiting for an idle server", "interrupted": attempt})
                continue
            except calibration.CalibrationError as e:
                self.show({"state": "failed", "error": str(e)})
                log.warning("the stored plan could not be checked: %s", e)
                return
            if got_work():
                continue
            if result is None:
                self.show({"state": "failed", "error": f"{plan.runtime} did not run"})
                return
            self.show({"state": "done", "holds": result.holds, "ratio": round(result.ratio, 3),
                       "batch": result.batch, "seconds": round(result.seconds, 6),
                       "planned_s": round(result.planned_s, 6), "at": time.time()})
            if result.holds:
                log.info("stored plan checked: a batch of %d took %.1f ms, %.2fx its cost: it holds", result.batch,
                         1e3 * result.seconds, result.ratio)
            else:
                removed = calibration.forget(self.cache, plan)
                log.warning("stored plan checked: a batch of %d took %.1f ms, %.2fx its cost (allowed %.1fx either "
                            "way): the machine is %s than when it was measured; serving it until the next start, "
                            "which measures again%s", result.batch, 1e3 * result.seconds, result.ratio,
                            CHECK_TOLERANCE, "slower" if result.ratio > 1 else "faster",
                            "" if removed else " (the stored plan could not be removed)")
            return
        self.show({"state": "gave up", "error": f"the server was never idle for {CHECK_IDLE_S:g} s in "
                                                f"{CHECK_TRIES} tries of {CHECK_WAIT_S:g} s"})
        log.info("the stored plan was not checked: the server was never idle long enough")
