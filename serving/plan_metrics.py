"""The serving plan in the supervisor's Prometheus registry: the limits in force, the measured costs, and which
runtime, layout and CPU they came from (docs/observability.md lists the series)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from serving.plan import Plan


class PlanMetrics:
    """Gauges of the plan in force; `show` replaces what they say with a new plan."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.settings = Gauge("sketchygan_serving_plan",
                              "The serving limits in force (calibrated at start or fixed): batch_limit, instances, "
                              "threads, queue_size, queue_timeout_seconds (for requests that name no timeout), "
                              "compute_reserve_seconds, capacity_images_per_second, budget_seconds", ["setting"],
                              registry=registry)
        self.costs = Gauge("sketchygan_calibration_cost_seconds", "Measured seconds per batch of the served "
                           "model: per_image x n + overhead, per runtime and layout (instances x threads)",
                           ["runtime", "layout", "term"], registry=registry)
        self.info = Gauge("sketchygan_serving_plan_info", "1 for the plan in force: chosen runtime and layout, "
                          "how it was obtained, the CPU, the precision it computes in",
                          ["runtime", "layout", "source", "cpu_model", "isa", "precision"],
                          registry=registry)

    def show(self, p: Plan) -> None:
        for k in ("batch_limit", "instances", "threads", "max_queue_size"):
            self.settings.labels(k.replace("max_", "")).set(getattr(p, k))
        self.settings.labels("queue_timeout_seconds").set(p.queue_timeout_us / 1e6)  # for requests naming none
        self.settings.labels("compute_reserve_seconds").set(p.compute_reserve_s if p.per_image_s > 0 else 0.0)
        self.settings.labels("capacity_images_per_second").set(p.rate_rps)
        self.settings.labels("budget_seconds").set(p.budget_s)
        self.costs.clear()
        for c in p.costs:
            self.costs.labels(c["runtime"], c["layout"], "per_image").set(c["per_image_s"])
            self.costs.labels(c["runtime"], c["layout"], "overhead").set(c["overhead_s"])
        self.info.clear()
        self.info.labels(p.runtime, f"{p.instances}x{p.threads}", p.source, p.machine.get("cpu_model", ""),
                         p.machine.get("isa", ""), p.precision).set(1)
