"""What the HTTP gateway (web/) costs and how the page's requests get batched, measured side by side.

Per round: the same sketch, class and seeds sent one at a time through the gRPC client (the image alone, and the image
with its class confidence: a second call, to the scorer) and through the gateway, interleaved (same machine, same
moment); then the page's Generate — one /v1/variations call for 4 seeds, against the 4 parallel requests it sent
before — with Triton's counters telling how many model executions served them; then the sketch in every class x 4
seeds, as one `/v1/grid` call against the same images asked one `/v1/generate` call at a time, interleaved.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import io
import json
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loadtest.triton_metrics import average_batch, delta, scrape


@dataclass(frozen=True)
class GatewayBenchConfig:
    requests: int = 100  # sequential requests per path and round
    rounds: int = 3
    page_generates: int = 50  # Generate clicks per way (one /v1/variations call; 4 parallel /v1/generate calls)
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
    page = measure_page(post, http, metrics_url, cfg.page_generates)
    grid = measure_grid(post, http, n_classes, cfg.grid_rounds, metrics_url)
    # percentiles as the load generator reports them (LoadResult.pct: numpy's interpolated percentile)
    (d50, d95), (g50, g95) = (1e3 * np.percentile(direct, [50, 95]), 1e3 * np.percentile(gateway, [50, 95]))
    return {"direct_p50_ms": float(d50), "gateway_p50_ms": float(g50),
            "direct_p95_ms": float(d95), "gateway_p95_ms": float(g95), "gateway_over_direct_p50": float(g50 / d50),
            **page, **grid, **_scored(scored, d50), "config": cfg.__dict__}


def measure_page(post, http, metrics_url: str, generates: int, rounds: int = 2) -> dict:
    """A Generate click as the page sends it (one /v1/variations call for the 4 seeds) against what it sent before
    2026-12-07 (4 parallel /v1/generate calls, one per seed), in alternating blocks: ms per Generate, and the images
    and model executions Triton counted for each (how well the 4 were batched)."""
    ways = {"page": lambda r: post(f"/v1/variations?class=2&seeds={','.join(str(4 * r + j) for j in range(4))}"),
            "page_4_requests": lambda r: list(pool.map(http, range(4 * r, 4 * r + 4)))}
    seconds = {k: 0.0 for k in ways}
    counts: dict[str, dict] = {k: {} for k in ways}
    blocks = [b for b in np.array_split(np.arange(generates), rounds) if len(b)]
    with cf.ThreadPoolExecutor(4) as pool:
        for block in blocks:
            for name, way in ways.items():
                before = scrape(metrics_url)
                t0 = time.perf_counter()
                for r in block:
                    way(int(r))
                seconds[name] += time.perf_counter() - t0
                d = delta(before, scrape(metrics_url))
                counts[name] = {k: counts[name].get(k, 0.0) + d.get(k, 0.0) for k in set(d) | set(counts[name])}
    out = {}
    for name in ways:
        d = counts[name]
        out |= {f"{name}_generate_ms": 1e3 * seconds[name] / generates,
                f"{name}_images": d.get("nv_inference_count", 0.0),
                f"{name}_executions": d.get("nv_inference_exec_count", 0.0), f"{name}_mean_batch": average_batch(d)}
    return out


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


def add_arguments(p: argparse.ArgumentParser) -> None:
    """`python -m loadtest gateway`'s options."""
    p.add_argument("--host", help="gRPC address of a running server (default: start one)")
    p.add_argument("--metrics-url", help="its metrics endpoint (needed with --host)")
    p.add_argument("--gateway", help="base URL of a running gateway (default: start `python -m web` here)")
    p.add_argument("--repository", default="model_repository")
    p.add_argument("--requests", type=int, default=GatewayBenchConfig.requests,
                   help="sequential requests per path and round")
    p.add_argument("--rounds", type=int, default=GatewayBenchConfig.rounds)
    p.add_argument("--page-generates", type=int, default=GatewayBenchConfig.page_generates)
    p.add_argument("--live-strokes", type=int, default=60,
                   help="strokes drawn in headless Chromium with live results on, per mode (one request per update, "
                        "and four); 0: skip")
    p.add_argument("--out", default="docs/benchmarks", help="gateway.json goes here")


def run(args: argparse.Namespace) -> int:
    """Measure against the given or a started server and gateway; write gateway.json and print a summary."""
    from loadtest.replicas import target
    cfg = GatewayBenchConfig(requests=args.requests, rounds=args.rounds, page_generates=args.page_generates)
    with target(args.host, args.metrics_url, args.repository) as (grpc_url, metrics_url):
        if not metrics_url:
            print("error: --metrics-url is needed with --host", file=sys.stderr)
            return 2
        with contextlib.ExitStack() as stack:
            if args.gateway:
                url = args.gateway
            else:
                from serving.process import free_port
                from web.process import GatewayProcess
                gw = stack.enter_context(GatewayProcess(grpc_url, free_port(), Path("reports") / "gateway.log"))
                url = gw.wait(ready=True).url
            report = measure_gateway(grpc_url, metrics_url, url, cfg)
            if args.live_strokes:
                from loadtest.live import measure_live
                report |= measure_live(url, args.live_strokes)
    from serving.machine import cpu_facts
    report["cpu"] = cpu_facts()
    out = Path(args.out) / "gateway.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"one image, sequential: client p50 {report['direct_p50_ms']:.2f} ms, gateway p50 "
          f"{report['gateway_p50_ms']:.2f} ms ({report['gateway_over_direct_p50']:.2f}x); p95 "
          f"{report['direct_p95_ms']:.2f} vs {report['gateway_p95_ms']:.2f} ms")
    if report.get("scorer"):
        print(f"with its class confidence (generate, then the scorer): client p50 {report['scored_p50_ms']:.2f} ms, "
              f"+{report['score_added_p50_ms']:.2f} ms ({report['scored_over_direct_p50']:.2f}x the image alone)")
    for name, what in (("page", "one /v1/variations call"), ("page_4_requests", "4 parallel /v1/generate calls")):
        print(f"a Generate as {what}: {report[name + '_generate_ms']:.1f} ms, {report[name + '_images']:.0f} images in "
              f"{report[name + '_executions']:.0f} model executions (mean batch {report[name + '_mean_batch']:.2f})")
    print(f"every class x 4 seeds ({report['grid_images']} images): one /v1/grid call "
          f"{report['grid_one_call_ms']:.1f} ms "
          f"({report['grid_requests']:.0f} requests, {report['grid_executions']:.0f} model executions), one "
          f"/v1/generate call per image {report['grid_single_calls_ms']:.1f} ms "
          f"({report['grid_singles_over_one_call']:.1f}x the grid)")
    if "live_p50_ms" in report:
        print(f"live drawing in Chromium, pointer-up -> all 4 results updated, {report['live_strokes']} strokes each, "
              f"{report['live_rounds']} interleaved blocks: one request per update p50 {report['live_p50_ms']:.0f} "
              f"ms, p95 {report['live_p95_ms']:.0f} ms; four requests (one per result) p50 "
              f"{report['live_4_requests_p50_ms']:.0f} ms, p95 {report['live_4_requests_p95_ms']:.0f} ms")
    print(f"wrote {out}")
    return 0
