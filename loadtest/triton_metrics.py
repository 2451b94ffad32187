"""Triton's metrics for one model as numbers: snapshots, differences, average batch size."""
from __future__ import annotations

from serving.metrics import read_metrics


def scrape(url: str, model: str = "sketchygan", timeout_s: float = 10.0) -> dict[str, float]:
    """{metric name: value summed over this model's series}: Triton's nv_inference_* and nv_cache_* (response
    cache hits and misses) and model.py's sketchygan_*."""
    return read_metrics(url, ("nv_inference_", "nv_cache_", "sketchygan_"), model=model, timeout_s=timeout_s)


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}


def average_batch(d: dict[str, float]) -> float:
    """nv_inference_count (rows) / nv_inference_exec_count (model executions)."""
    execs = d.get("nv_inference_exec_count", 0.0)
    return d.get("nv_inference_count", 0.0) / execs if execs else 0.0


def rejected_requests(url: str, model: str = "sketchygan") -> float:
    """Requests Triton's queue policy has refused so far (queue full, or a caller's timeout expired while queued)."""
    return by_label(url, "nv_inference_request_failure", "reason", model).get("REJECTED", 0.0)


def by_label(url: str, name: str, label: str, model: str = "sketchygan") -> dict[str, float]:
    """{value of `label`: value} of one metric family's series for `model`, e.g. skipped requests by reason."""
    from serving.metrics import read_samples
    return {labels.get(label, ""): v for n, labels, v in read_samples(url, (name,))
            if n == name and labels.get("model") == model}
