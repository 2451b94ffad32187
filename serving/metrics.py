"""Read Triton's Prometheus text endpoint (:8002/metrics) into numbers, with prometheus_client's own parser."""
from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def read_metrics(url: str, prefixes: tuple[str, ...] = ("nv_inference_", "sketchygan_"), model: str | None = None,
                 timeout_s: float = 10.0) -> dict[str, float]:
    """{name: value summed over its series} for the families starting with `prefixes` (summary quantiles left out),
    optionally only the series of `model`. Counters are keyed by their family name, as Triton writes them (the
    parser would add `_total`). Raises OSError when the endpoint cannot be read."""
    text = urllib.request.urlopen(url, timeout=timeout_s).read().decode()
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        if not fam.name.startswith(prefixes):
            continue
        for s in fam.samples:
            if "quantile" in s.labels or (model is not None and s.labels.get("model") != model):
                continue
            name = fam.name if s.name == fam.name + "_total" else s.name
            out[name] = out.get(name, 0.0) + s.value
    return out
