"""Read Triton's Prometheus text endpoint (:8002/metrics) into numbers for one model."""
from __future__ import annotations

import re
import urllib.request

_LINE = re.compile(r'^(\w+)\{([^}]*)\} (\S+)$')


def scrape(url: str, model: str = "sketchygan", timeout_s: float = 10.0) -> dict[str, float]:
    """{metric name: value summed over this model's series} for the nv_inference_* family."""
    text = urllib.request.urlopen(url, timeout=timeout_s).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m and m.group(1).startswith("nv_inference_") and f'model="{model}"' in m.group(2) \
                and "quantile" not in m.group(2):
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
    return out


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}


def average_batch(d: dict[str, float]) -> float:
    """nv_inference_count (rows) / nv_inference_exec_count (model executions)."""
    execs = d.get("nv_inference_exec_count", 0.0)
    return d.get("nv_inference_count", 0.0) / execs if execs else 0.0
