"""What the HTTP gateway (web/) costs and whether the page's 4 parallel requests get batched, measured side by side.

Per round: the same sketch, class and seeds sent one at a time through the gRPC client (the image alone, and the image
with its class confidence: a second call, to the scorer) and through the gateway, interleaved (same machine, same
moment); then the page's pattern — 4 parallel requests, 4 seeds — with Triton's
counters telling how many model executions served them; then the sketch in every class x 4 seeds, as one
`/v1/grid` call against the same images asked one `/v1/generate` call at a time, interleaved.
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
    grid_rounds: int = 10  # grids (every class x GRID_SEEDS seeds) per path


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

    def post(path: str) -> bytes:
        req = urllib.request.Request(f"{gateway_url}{path}", data=png, method="POST",
                                     headers={"content-type": "image/png"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read()

    def http(seed: int, class_id: int = cfg.class_id) -> bytes:
        return post(f"/v1/generate?class={class_id}&seed={seed}")

    direct, scored, gateway = [], [], []
    with SketchClient(grpc_url, timeout_s=30) as client:
        n_classes = len(client.classes)
        has_scorer = client.has_scorer()
        for s in range(20):  # warm-up every path
            http(s)
            client.generate_array(png, cfg.class_id, seed=s)
            if has_scorer:
                client.generate_explained(png, cfg.class_id, seed=s)
        for _ in range(cfg.rounds):
            for s in range(cfg.requests):
                t = time.perf_counter()
                client.generate_array(png, cfg.class_id, seed=s)
                direct.append(time.perf_counter() - t)
                if has_scorer:  # the image and its class confidence: a second call, to the scorer model
                    t = time.perf_counter()
                    client.generate_explained(png, cfg.class_id, seed=s)
                    scored.append(time.perf_counter() - t)
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
    grid = measure_grid(post, http, n_classes, cfg.grid_rounds, metrics_url)
    # percentiles as the load generator reports them (LoadResult.pct: numpy's interpolated percentile)
    (d50, d95), (g50, g95) = (1e3 * np.percentile(direct, [50, 95]), 1e3 * np.percentile(gateway, [50, 95]))
    return {"direct_p50_ms": float(d50), "gateway_p50_ms": float(g50),
            "direct_p95_ms": float(d95), "gateway_p95_ms": float(g95), "gateway_over_direct_p50": float(g50 / d50),
            "page_generate_ms": 1e3 * page_s / cfg.page_generates,
            "page_images": d.get("nv_inference_count", 0.0), "page_executions": d.get("nv_inference_exec_count", 0.0),
            "page_mean_batch": average_batch(d), **grid, **_scored(scored, d50), "config": cfg.__dict__}


def _scored(scored: list[float], direct_p50_ms: float) -> dict:
    """What the class confidence costs a caller: generate + score (two calls) against generate alone."""
    if not scored:
        return {"scorer": False}
    s50, s95 = 1e3 * np.percentile(scored, [50, 95])
    return {"scorer": True, "scored_p50_ms": float(s50), "scored_p95_ms": float(s95),
            "score_added_p50_ms": float(s50 - direct_p50_ms), "scored_over_direct_p50": float(s50 / direct_p50_ms)}


GRID_SEEDS = 4


def measure_grid(post, http, classes: int, rounds: int, metrics_url: str) -> dict:
    """One `/v1/grid` call (every class x GRID_SEEDS seeds, batched) against the same images as single
    `/v1/generate` calls one after another, interleaved per round; and the server executions one grid took."""
    one, singles = [], []
    post(f"/v1/grid?seeds={GRID_SEEDS}&seed=0")  # warm-up
    for r in range(rounds):
        t = time.perf_counter()
        post(f"/v1/grid?seeds={GRID_SEEDS}&seed={r}")
        one.append(time.perf_counter() - t)
        t = time.perf_counter()
        for c in range(classes):
            for j in range(GRID_SEEDS):
                http(r + j, c)
        singles.append(time.perf_counter() - t)
    before = scrape(metrics_url)
    post(f"/v1/grid?seeds={GRID_SEEDS}&seed=0")
    d = delta(before, scrape(metrics_url))
    one_ms, singles_ms = 1e3 * float(np.median(one)), 1e3 * float(np.median(singles))
    return {"grid_images": classes * GRID_SEEDS, "grid_one_call_ms": one_ms, "grid_single_calls_ms": singles_ms,
            "grid_singles_over_one_call": singles_ms / one_ms,
            "grid_requests": d.get("nv_inference_request_success", 0.0),
            "grid_executions": d.get("nv_inference_exec_count", 0.0)}
