"""A server's memory under a soak (`make chaos --soak`): the RSS of tritonserver and of each model process under it,
and how much it grew after the warm-up."""
from __future__ import annotations

import psutil

from serving.stubs import stubs_of


def rss_mib(pid: int | None) -> dict[str, float]:
    """RSS in MiB of tritonserver and each model process under it (empty when the server is gone)."""
    out = {}
    try:
        out["tritonserver"] = round(psutil.Process(pid).memory_info().rss / 2**20, 1)
        for stub in stubs_of(pid):
            out[f"stub {stub.instance}"] = round(psutil.Process(stub.pid).memory_info().rss / 2**20, 1)
    except (psutil.Error, TypeError):
        pass
    return out


def rss_growth(samples: list[dict], warm_s: float = 60.0) -> dict[str, dict]:
    """Per process of timed `rss_mib` samples ({"t": seconds, name: MiB, ...}): its RSS at the start, after `warm_s`
    and at the end, and the growth after the warm-up (what a leak would show)."""
    later = [s for s in samples if s["t"] >= warm_s]
    first, warm, last = samples[0], later[0] if later else samples[-1], samples[-1]
    return {k: {"start": first.get(k), "after_60s": warm.get(k), "end": last.get(k),
                "growth_after_60s": round(last[k] - warm[k], 1) if k in warm and k in last else None}
            for k in last if k != "t"}
