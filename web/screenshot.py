"""Drive the playground in headless Chromium (Playwright + Debian's `chromium`): draw, pick a class (and a style),
generate.

Used by the browser test (tests/e2e/test_web_browser.py) and for the README screenshot against a running gateway:
`python -m web.screenshot --url http://127.0.0.1:8080/ --out docs/img/playground.png` (`--sketch car --class
transport-ground` for the car; `--style art` for the emoji look). Needs the test extras
(playwright) and the `chromium` package (`make test` installs it); Playwright's own browser download is not used.
"""
from __future__ import annotations

import argparse
import math
import shutil
import sys
from pathlib import Path

# A sketch as strokes in canvas fractions (0..1): a fish — body outline, tail, eye, fin.
FISH: list[list[tuple[float, float]]] = [
    [(0.22 + 0.28 * (1 + math.cos(a)), 0.5 + 0.2 * math.sin(a)) for a in [k * math.pi / 24 for k in range(49)]],
    [(0.22, 0.5), (0.08, 0.34), (0.08, 0.66), (0.22, 0.5)],
    [(0.66, 0.45), (0.67, 0.44), (0.68, 0.45), (0.67, 0.46), (0.66, 0.45)],
    [(0.45, 0.32), (0.52, 0.2), (0.58, 0.31)],
]
def _circle(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in [k * math.pi / 12 for k in range(25)]]


# a car seen from the side: body with a cabin, two wheels, a window line
CAR: list[list[tuple[float, float]]] = [
    [(0.1, 0.62), (0.1, 0.48), (0.3, 0.46), (0.38, 0.32), (0.66, 0.32), (0.76, 0.46), (0.9, 0.5), (0.9, 0.62),
     (0.1, 0.62)],
    _circle(0.28, 0.64, 0.08), _circle(0.72, 0.64, 0.08),
    [(0.42, 0.35), (0.42, 0.46)], [(0.55, 0.34), (0.55, 0.46)],
]
SKETCHES = {"fish": FISH, "car": CAR}
WAIT_MS = 60_000


def launch(playwright):
    """Headless Debian chromium (no sandbox: CI runs as root)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        raise RuntimeError("no `chromium` on PATH: install Debian's chromium package (make test does)")
    return playwright.chromium.launch(executable_path=binary, args=["--no-sandbox"])


def draw(page, strokes: list[list[tuple[float, float]]] = FISH) -> None:
    """Draw strokes on the canvas with real mouse events (pointerdown / move / up)."""
    canvas = page.get_by_test_id("sketch")
    canvas.scroll_into_view_if_needed()  # mouse events land only inside the viewport
    box = canvas.bounding_box()
    for stroke in strokes:
        x, y = stroke[0]
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=2)
        page.mouse.up()


def wait_for_classes(page) -> int:
    """Wait until the class picker is filled from /v1/classes; returns how many classes it offers."""
    from playwright.sync_api import expect
    options = page.get_by_test_id("class").locator("option")
    expect(options.first).to_be_attached(timeout=WAIT_MS)
    return options.count()


def result_pixels(page, n: int = 4) -> list[list[int]]:
    """Wait for `n` decoded result images and return each one's RGBA pixels (read back through a canvas)."""
    from playwright.sync_api import expect
    results = page.get_by_test_id("result")
    expect(results).to_have_count(n, timeout=WAIT_MS)
    return results.evaluate_all("""async (imgs) => Promise.all(imgs.map(async (img) => {
        await img.decode();
        const c = document.createElement("canvas");
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext("2d");
        g.drawImage(img, 0, 0);
        return Array.from(g.getImageData(0, 0, c.width, c.height).data);
    }))""")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m web.screenshot", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8080/", help="the playground page")
    ap.add_argument("--out", default="docs/img/playground.png", help="PNG to write")
    ap.add_argument("--class", dest="cls", default="animal-marine", help="class to pick")
    ap.add_argument("--sketch", default="fish", choices=sorted(SKETCHES), help="what the mouse draws")
    ap.add_argument("--style", default=None, help="style to pick (default: the page's, the model's default)")
    ap.add_argument("--order-by-score", action="store_true", help="tick 'order by score' (the surest result first)")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1040, "height": 640})
        page.goto(args.url)
        wait_for_classes(page)
        draw(page, SKETCHES[args.sketch])
        page.get_by_test_id("class").select_option(label=args.cls)
        if args.style:
            page.get_by_test_id("style").select_option(label=args.style)
        if args.order_by_score:
            page.get_by_test_id("order-by-score").check()
        page.get_by_test_id("generate").click()
        result_pixels(page)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=args.out)
        browser.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
