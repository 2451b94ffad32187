"""What the HTTP gateway (web/) costs and whether the page's 4 parallel requests get batched, measured side by side.

Per round: the same sketch, class and seeds sent one at a time through the gRPC client and through the gateway,
interleaved (same machine, same moment); then the page's pattern — 4 parallel requests, 4 seeds — with Triton's
counters telling how many model executions served them.
"""
from __future__ import annotations

import concurrent.futures as cf
import io
import time
import urllib.request
from dataclasses import dataclass

import numpy as np

from loadtest.triton_metrics import average_batch, delta, scrape


@dataclass(frozen=True)
class GatewayBenchConfig:
    requests: int = 100  # sequential requests per path and round
    rounds: int = 3
    page_generates: int = 50  # rounds of 4 parallel requests (one Generate click each)
    class_id: int = 2


def _sketch_png() -> bytes:
    from PIL import Image, ImageDraw
    im = Image.new("L", (256, 256), 255)
    ImageDraw.Draw(im).ellipse((40, 60, 220, 200), outline=0, width=5)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def measure_gateway(grpc_url: str, metrics_url: str, gateway_url: str,
                    cfg: GatewayBenchConfig = GatewayBenchConfig()) -> dict:
    """Latency of one image via the client vs via the gateway (ms), and the mean batch of the page's pattern."""
    from sketchygan_client import SketchClient
    png = _sketch_png()

    def http(seed: int) -> bytes:
        req = urllib.request.Request(f"{gateway_url}/v1/generate?class={cfg.class_id}&seed={seed}", data=png,
                                     method="POST", headers={"content-type": "image/png"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read()

    direct, gateway = [], []
    with SketchClient(grpc_url, timeout_s=30) as client:
        for s in range(20):  # warm-up both paths
            http(s)
            client.generate_array(png, cfg.class_id, seed=s)
        for _ in range(cfg.rounds):
            for s in range(cfg.requests):
                t = time.perf_counter()
                client.generate_array(png, cfg.class_id, seed=s)
                direct.append(time.perf_counter() - t)
                t = time.perf_counter()
                http(s)
                gateway.append(time.perf_counter() - t)
    before = scrape(metrics_url)
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(4) as pool:
        for r in range(cfg.page_generates):
            list(pool.map(http, range(4 * r, 4 * r + 4)))
    page_s = time.perf_counter() - t0
    d = delta(before, scrape(metrics_url))
    # percentiles as the load generator reports them (LoadResult.pct: numpy's interpolated percentile)
    (d50, d95), (g50, g95) = (1e3 * np.percentile(direct, [50, 95]), 1e3 * np.percentile(gateway, [50, 95]))
    return {"direct_p50_ms": float(d50), "gateway_p50_ms": float(g50),
            "direct_p95_ms": float(d95), "gateway_p95_ms": float(g95), "gateway_over_direct_p50": float(g50 / d50),
            "page_generate_ms": 1e3 * page_s / cfg.page_generates,
            "page_images": d.get("nv_inference_count", 0.0), "page_executions": d.get("nv_inference_exec_count", 0.0),
            "page_mean_batch": average_batch(d), "config": cfg.__dict__}
