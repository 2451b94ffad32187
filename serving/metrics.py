"""Read Triton's Prometheus text endpoint (:8002/metrics) into numbers, with prometheus_client's own parser."""
from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def read_samples(url: str, prefixes: tuple[str, ...] = ("nv_inference_", "sketchygan_"),
                 timeout_s: float = 10.0) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every series of the families starting with `prefixes` (summary quantiles left
    out). Counters are named by their family, as Triton writes them (the parser would add `_total`). One read of
    the endpoint; raises OSError when it cannot be read."""
    text = urllib.request.urlopen(url, timeout=timeout_s).read().decode()
    out = []
    for fam in text_string_to_metric_families(text):
        if not fam.name.startswith(prefixes):
            continue
        for s in fam.samples:
            if "quantile" not in s.labels:
                out.append((fam.name if s.name == fam.name + "_total" else s.name, s.labels, s.value))
    return out


def read_metrics_by_model(url: str, prefixes: tuple[str, ...] = ("nv_inference_", "sketchygan_"),
                          timeout_s: float = 10.0) -> dict[str, dict[str, float]]:
    """{model: {name: value summed over that model's series}} (series without a model label under ""); see
    read_samples."""
    out: dict[str, dict[str, float]] = {}
    for name, labels, value in read_samples(url, prefixes, timeout_s):
        per_model = out.setdefault(labels.get("model", ""), {})
        per_model[name] = per_model.get(name, 0.0) + value
    return out


def read_metrics(url: str, prefixes: tuple[str, ...] = ("nv_inference_", "sketchygan_"), model: str | None = None,
                 timeout_s: float = 10.0) -> dict[str, float]:
    """{name: value summed over its series}, over all models or only `model`'s (see read_metrics_by_model)."""
    by_model = read_metrics_by_model(url, prefixes, timeout_s)
    out: dict[str, float] = {}
    for m, values in by_model.items():
        if model is None or m == model:
            for name, v in values.items():
                out[name] = out.get(name, 0.0) + v
    return out
