"""Live drawing in the playground, measured in headless Chromium: from a stroke's pointer-up to all four results
showing that drawing (the page logs it in `window.liveLatencies`), one stroke at a time over many strokes; the page's
one request per update against the four requests it sent before (one per result), side by side in one run."""
from __future__ import annotations

import math

import numpy as np


def _stroke(i: int) -> list[tuple[float, float]]:
    """The i-th benchmark stroke: a short arc at a place that moves around the canvas (canvas fractions)."""
    cx, cy = 0.5 + 0.3 * math.cos(i * 0.7), 0.5 + 0.3 * math.sin(i * 1.1)
    return [(cx + 0.08 * math.cos(a), cy + 0.08 * math.sin(a)) for a in (k * math.pi / 6 for k in range(5))]


# requests per live update: all 4 seeds in one call (the page's), 2 calls of 2, one call per result (before)
MODES = (1, 2, 4)


def _strokes_on(page, first: int, count: int, wait_s: float) -> None:
    """Draw strokes first .. first+count-1 one after another, each once all 4 results showed the one before."""
    from web.screenshot import draw
    for i in range(first, first + count):
        logged = page.evaluate("() => window.liveLatencies.length")
        draw(page, [_stroke(i)])
        for _ in range(int(wait_s / 0.01)):
            if page.evaluate("() => window.liveLatencies.length") > logged:
                break
            page.wait_for_timeout(10)
        else:
            state = page.evaluate("() => window.liveState()")
            raise RuntimeError(f"stroke {i}: the results did not show it within {wait_s:g} s ({state})")


def measure_live(gateway_url: str, strokes: int = 60, wait_s: float = 30.0, rounds: int = 3,
                 modes: tuple[int, ...] = MODES) -> dict:
    """p50 / p95 (ms) of pointer-up -> all 4 live results updated, per mode (`?live_requests=N`: N requests per
    update), over `strokes` strokes per mode drawn one after another: the modes take turns in `rounds` blocks of
    strokes / rounds, each on its own page, so that the machine's drifts hit both alike."""
    from playwright.sync_api import sync_playwright

    from web.screenshot import launch, wait_for_classes
    per_block = max(1, strokes // rounds)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            pages = {}
            for n in modes:
                page = browser.new_page(viewport={"width": 1040, "height": 640})
                page.goto(gateway_url.rstrip("/") + f"/?live_requests={n}")
                wait_for_classes(page)
                page.get_by_test_id("live").check()
                _strokes_on(page, -1, 1, wait_s)  # a warm-up stroke: its answers pay for the connections
                pages[n] = page
            for r in range(rounds):
                for n, page in pages.items():
                    _strokes_on(page, r * per_block, per_block, wait_s)
            ms = {n: page.evaluate("() => window.liveLatencies")[1:] for n, page in pages.items()}
        finally:
            browser.close()
    out: dict = {"live_strokes": per_block * rounds, "live_rounds": rounds}
    for n, values in ms.items():
        p50, p95 = np.percentile(values, [50, 95])
        key = "live" if n == 1 else f"live_{n}_requests"
        out |= {f"{key}_p50_ms": float(p50), f"{key}_p95_ms": float(p95), f"{key}_max_ms": float(max(values))}
    return out
