"""The serving plan derived from measured costs (`derive`): runtime and layout, the largest batch that fits a quarter
of the latency budget, the queue size and the default queue timeout (the work of a full queue: a request that names
no timeout of its own is never refused for waiting); and the verdict of a quick re-measurement of a stored plan
(`still_holds`). Pure functions of their inputs: docs/reliability.md has the derivation."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields

from serving.machine import Machine
from serving.measure import Cost
from triton_repo.serving_config import Limits

DEFAULT_BUDGET_S = 0.3
OVERLOAD_FACTOR = 32  # the queue holds this many times what the measured rate drains within the queue share ...
MIN_QUEUE = 256  # ... and at least this many requests (a few KiB each at 64 px)
TIE_MARGIN = 1.1  # a later runtime/layout must beat the best so far by 10 % to be chosen
# a stored plan is served at once; after the server is ready, a quick re-measurement (CHECK_S of its layout at its
# batch limit, while the server is idle) must be within 1/1.6x .. 1.6x of it: wide enough for run-to-run noise (up
# to ~1.5x on millisecond batches), narrow enough for what matters (a core shared with busy loops is ~3x slower)
CHECK_S, CHECK_TOLERANCE = 1.0, 1.6
# the derivation's version, stored with a plan: a start serves a stored plan only when it was derived by these rules
# (2: the default queue timeout became the work of a full queue, 2026-12-06; 1: the queue share of the budget)
PLAN_RULES = 2


class CalibrationError(RuntimeError):
    """The machine could not be measured (the model does not run, or the measurement timed out)."""


@dataclass(frozen=True, kw_only=True)
class Plan(Limits):
    """What serving uses: the serving `Limits` it chose (runtime and layout, the batch limit, the queue bounds) and
    the evidence: the measured cost, the budget, how it was obtained."""

    batch_limit: int  # always a number here (the limit the measured cost was derived for)
    per_image_s: float
    overhead_s: float
    budget_s: float
    rate_rps: float  # images/s all instances together at the batch limit, as measured
    source: str  # "measured"; "reused" (a restart, same machine facts); "cached" (stored by an earlier start on the
    # same machine facts, served at once and checked after ready); "fixed" (--calibrate off)
    machine: dict = field(default_factory=dict)
    costs: list[dict] = field(default_factory=list)  # every runtime/layout measured
    measure_s: float = 0.0
    failed: dict = field(default_factory=dict)  # runtime -> why it could not be measured (not a candidate)
    rules: int = 1  # PLAN_RULES of the derivation (1 for plans stored before the field existed)

    @property
    def limits(self) -> Limits:
        """The limits alone (what a config is written from)."""
        return Limits(**{f.name: getattr(self, f.name) for f in fields(Limits)})

    def batch_s(self, n: int) -> float:
        return self.per_image_s * n + self.overhead_s

    @property
    def compute_reserve_s(self) -> float:
        """What a request needs beyond its queue wait: the batch ahead of it on its instance, then its own."""
        return 2 * self.batch_s(self.batch_limit)

    @property
    def queue_share_s(self) -> float:
        """What the budget leaves for waiting in the queue: a caller whose deadline is the budget sends this as its
        request timeout (its deadline less the compute reserve)."""
        return queue_share_s(self.budget_s, self.batch_s(self.batch_limit))

    def summary(self) -> str:
        measured = "; ".join(f"{c['runtime']} {c['layout']}: {1e3 * c['per_image_s']:.2f} ms/image + "
                             f"{1e3 * c['overhead_s']:.2f} ms" for c in self.costs)
        measured += "".join(f"; {k} failed ({v})" for k, v in self.failed.items())
        return (f"calibration ({self.source}, {self.measure_s:.1f} s; {self.machine.get('cpu_model', '?')}, "
                f"{self.machine.get('isa', '?')}, {self.machine.get('usable_cores', '?')} cores): {measured or 'none'}"
                f" -> {self.runtime} {self.precision} {self.instances}x{self.threads}, batches <= {self.batch_limit} "
                f"({1e3 * self.batch_s(self.batch_limit):.0f} ms), queue <= {self.max_queue_size} (a full queue of the "
                f"largest requests: {self.queue_timeout_us / 1e6:.0f} s, the default queue timeout), compute reserve "
                f"{1e3 * self.compute_reserve_s:.0f} ms, ~{self.rate_rps:.0f} images/s, "
                f"budget {1e3 * self.budget_s:.0f} ms")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        return cls(**json.loads(text))


def derive(costs: list[Cost], budget_s: float, max_batch_size: int, machine: Machine | None = None,
           source: str = "measured", measure_s: float = 0.0) -> Plan:
    """The plan with the most throughput within `budget_s` among the measured runtimes and layouts."""
    if not costs:
        raise CalibrationError("no runtime could be measured")
    if budget_s <= 0:
        raise ValueError(f"budget must be positive, got {budget_s}")
    best = None
    for c in costs:
        m = 1
        while m < max_batch_size and c.batch_s(m + 1) <= budget_s / 4:
            m += 1
        rate = c.instances * m / c.batch_s(m)
        # several single-threaded instances (measured first) unless one multi-threaded instance is clearly faster:
        # they keep serving when one model process dies, and the choice does not flip on noise
        if best is None or rate > best[2] * TIE_MARGIN:
            best = (c, m, rate)
    c, m, rate = best
    batch = c.batch_s(m)
    share = queue_share_s(budget_s, batch)
    # The size only decides when refusals come at once instead of after a caller's own timeout: a full queue answers
    # at once, and callers that retry at once then spin on refusals, costing CPU on both sides (measured: goodput
    # 0.08 of capacity with a queue of what the rate drains in the queue share, 1.19 with a long one). So the queue
    # holds OVERLOAD_FACTOR x what the measured rate drains within the share, and never fewer than MIN_QUEUE.
    queue = max(MIN_QUEUE, math.ceil(OVERLOAD_FACTOR * rate * share))
    # The default timeout is what computing a full queue of the largest requests takes: a request that names no
    # timeout of its own is refused only when the queue is full, never for waiting behind work the queue admitted
    # (a closed loop of batches is slow, not overloaded). A caller's own timeout, shorter, judges its request.
    largest = c.per_image_s * max_batch_size + c.overhead_s * math.ceil(max_batch_size / m)  # computed in chunks of m
    patient_s = queue * largest / c.instances
    return Plan(runtime=c.runtime, precision=c.precision, instances=c.instances, threads=c.threads, batch_limit=m,
                queue_timeout_us=int(patient_s * 1e6), max_queue_size=queue, per_image_s=c.per_image_s,
                overhead_s=c.overhead_s, budget_s=budget_s, rate_rps=round(rate, 1), source=source,
                machine=machine_facts(machine) if machine else {},
                costs=_plain([{**asdict(x), "layout": x.layout} for x in costs]), measure_s=round(measure_s, 2),
                rules=PLAN_RULES)


def queue_share_s(budget_s: float, batch_s: float) -> float:
    """What a request may wait in the queue within `budget_s`: once taken from the queue it may still wait for its
    instance's current batch, then runs its own (`batch_s` each); at least a quarter of the budget."""
    return max(budget_s - 2 * batch_s, budget_s / 4)


def _plain(value):
    """As it reads back from JSON (tuples become lists), so that a plan compares equal to its stored copy."""
    return json.loads(json.dumps(value))


def machine_facts(machine: Machine) -> dict:
    return _plain({**asdict(machine), "usable_cores": machine.usable_cores})


@dataclass(frozen=True)
class Check:
    """A quick re-measurement of a stored plan: its layout timed at its batch limit, as a ratio to the plan's cost
    (> 1: the machine is slower now than when the plan was measured)."""

    batch: int
    seconds: float
    planned_s: float

    @property
    def ratio(self) -> float:
        return self.seconds / self.planned_s

    @property
    def holds(self) -> bool:
        return 1 / CHECK_TOLERANCE <= self.ratio <= CHECK_TOLERANCE


def still_holds(plan: Plan, check: Cost) -> Check | None:
    """The verdict on `plan` from `check`, a re-measurement at its batch limit (None when nothing was timed)."""
    if not check.points:
        return None
    n, seconds = check.points[-1]
    return Check(int(n), float(seconds), plan.batch_s(n))
