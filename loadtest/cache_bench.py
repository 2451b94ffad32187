"""Response cache: latency of a hit (a request repeated, e.g. the playground's "more like this" re-sending a seed)
next to a miss (a new seed), interleaved call by call against one real server with the cache on."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from loadtest.sketches import sketch_set
from loadtest.triton_metrics import delta, scrape


def measure_cache(repository: Path, calls: int = 200, cache_mb: float = 64.0) -> dict:
    from serving.machine import cpu_facts
    from serving.process import free_port
    from serving.server import ServerConfig, TritonServer
    from sketchygan_client import SketchClient
    cfg = ServerConfig(repository=repository, grpc_port=free_port(), metrics_port=free_port(),
                       response_cache_bytes=int(cache_mb * (1 << 20)))
    with TritonServer(cfg, log_path=Path("reports") / "cache-tritonserver.log") as srv, \
            SketchClient(srv.grpc_url, timeout_s=30) as client:
        sketch = sketch_set(1, client.resolution)[0]
        client.generate_array(sketch, 0, seed=0)  # the request every "hit" repeats
        for s in range(1, 11):  # warm-up of the miss path
            client.generate_array(sketch, 0, seed=10_000 + s)
        before = scrape(srv.metrics_url)
        hit, miss = [], []
        for i in range(calls):
            for seed, out in ((0, hit), (1 + i, miss)) if i % 2 == 0 else ((1 + i, miss), (0, hit)):
                t0 = time.perf_counter()
                client.generate_array(sketch, 0, seed=seed)
                out.append(1e3 * (time.perf_counter() - t0))
        d = delta(before, scrape(srv.metrics_url))
    h50, h95, m50, m95 = (float(np.percentile(a, q)) for a in (hit, miss) for q in (50, 95))
    return {"machine": cpu_facts(flags=False), "calls_each": calls, "hit_p50_ms": round(h50, 3),
            "hit_p95_ms": round(h95, 3),
            "miss_p50_ms": round(m50, 3), "miss_p95_ms": round(m95, 3), "miss_over_hit_p50": round(m50 / h50, 2),
            "server_hits": int(d.get("nv_cache_hit_summary_per_model_count", 0)),
            "server_misses": int(d.get("nv_cache_miss_summary_per_model_count", 0))}
