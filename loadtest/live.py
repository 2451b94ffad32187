"""Live drawing in the playground, measured in headless Chromium: from a stroke's pointer-up to all four results
showing that drawing (the page logs it in `window.liveLatencies`), one stroke at a time over many strokes."""
from __future__ import annotations

import math

import numpy as np


def _stroke(i: int) -> list[tuple[float, float]]:
    """The i-th benchmark stroke: a short arc at a place that moves around the canvas (canvas fractions)."""
    cx, cy = 0.5 + 0.3 * math.cos(i * 0.7), 0.5 + 0.3 * math.sin(i * 1.1)
    return [(cx + 0.08 * math.cos(a), cy + 0.08 * math.sin(a)) for a in (k * math.pi / 6 for k in range(5))]


def measure_live(gateway_url: str, strokes: int = 60, wait_s: float = 30.0) -> dict:
    """p50 / p95 (ms) of pointer-up -> all 4 live results updated, over `strokes` strokes drawn one after another."""
    from playwright.sync_api import sync_playwright

    from web.screenshot import draw, launch, wait_for_classes
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1040, "height": 640})
            page.goto(gateway_url.rstrip("/") + "/")
            wait_for_classes(page)
            page.get_by_test_id("live").check()
            for i in range(-1, strokes):  # stroke -1 warms up: its answers pay for the connections
                logged = page.evaluate("() => window.liveLatencies.length")
                draw(page, [_stroke(i)])
                for _ in range(int(wait_s / 0.01)):
                    if page.evaluate("() => window.liveLatencies.length") > logged:
                        break
                    page.wait_for_timeout(10)
                else:
                    raise RuntimeError(f"stroke {i}: the results did not show it within {wait_s:g} s")
            ms = page.evaluate("() => window.liveLatencies")[1:]  # the warm-up stroke left out
        finally:
            browser.close()
    p50, p95 = np.percentile(ms, [50, 95])
    return {"live_strokes": len(ms), "live_p50_ms": float(p50), "live_p95_ms": float(p95),
            "live_max_ms": float(max(ms))}
