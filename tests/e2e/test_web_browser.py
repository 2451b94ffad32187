"""The playground page in a real headless Chromium (Playwright + Debian's chromium) against the real gateway and
tritonserver: draw with mouse events, generate 4 seeds, keep one seed, upload, clear, and a gateway 400 shown."""
import numpy as np
import pytest
from PIL import Image, ImageDraw

from web.screenshot import draw, launch, result_pixels, wait_for_classes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def page(gateway):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = launch(p)
        pg = browser.new_page(viewport={"width": 1040, "height": 640})
        pg.page_errors = []
        pg.on("pageerror", lambda e: pg.page_errors.append(str(e)))
        pg.goto(gateway.url + "/")
        yield pg
        browser.close()


def _images(pixels: list[list[int]]) -> list[np.ndarray]:
    out = []
    for px in pixels:
        a = np.array(px, np.uint8)
        side = int(np.sqrt(a.size // 4))
        out.append(a.reshape(side, side, 4)[:, :, :3])
    return out


def _seeds(page) -> list[str]:
    return [t.split()[-1] for t in page.locator("figcaption span").all_inner_texts()]


def _canvas_ink(page) -> float:
    """Fraction of canvas pixels that are not white."""
    return page.get_by_test_id("sketch").evaluate("""(c) => {
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let ink = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] < 250) ink++;
        return ink / (d.length / 4);
    }""")


def test_draw_generate_four_seeds(page, server, tmp_path):
    from sketchygan_client import SketchClient
    with SketchClient(server.grpc_url) as c:
        classes = list(c.classes)
    assert wait_for_classes(page) == len(classes)
    assert _canvas_ink(page) == 0
    draw(page)
    assert _canvas_ink(page) > 0.01
    page.get_by_test_id("class").select_option(label=classes[2])
    page.get_by_test_id("generate").click()
    images = _images(result_pixels(page, 4))
    for im in images:
        assert im.std() > 1.0, "a blank (single-colour) result"
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.array_equal(images[i], images[j]), f"results {i} and {j} are identical"
    assert len(set(_seeds(page))) == 4
    assert page.get_by_test_id("error").is_hidden()
    page.screenshot(path=str(tmp_path / "playground.png"))
    assert page.page_errors == []


def test_more_like_this_keeps_that_seed(page):
    before_seeds, before = _seeds(page), _images(result_pixels(page, 4))
    page.get_by_role("button", name="more like this").first.click()
    page.get_by_test_id("generate").click()
    page.locator("figcaption span").nth(1).filter(has_not_text=before_seeds[1]).wait_for()
    after_seeds, after = _seeds(page), _images(result_pixels(page, 4))
    assert after_seeds[0] == before_seeds[0] and np.array_equal(after[0], before[0])  # kept: same sketch + seed
    assert all(a != b for a, b in zip(after_seeds[1:], before_seeds[1:]))  # the others re-rolled
    assert page.page_errors == []


def test_gateway_error_is_shown_in_the_page(page):
    """A class the server does not know (an option added to the picker): the gateway's 400 text appears."""
    page.get_by_test_id("class").evaluate("(s) => s.add(new Option('no-such-class', 'no-such-class'))")
    page.get_by_test_id("class").select_option("no-such-class")
    page.get_by_test_id("generate").click()
    error = page.get_by_test_id("error")
    error.wait_for(state="visible")
    assert "400" in error.inner_text() and "unknown class 'no-such-class'" in error.inner_text()
    assert page.page_errors == []


def test_clear_then_upload_a_sketch(page, tmp_path):
    page.get_by_test_id("clear").click()
    assert _canvas_ink(page) == 0
    im = Image.new("L", (300, 200), 255)
    ImageDraw.Draw(im).rectangle((60, 40, 240, 160), outline=0, width=6)
    path = tmp_path / "upload.png"
    im.save(path)
    page.get_by_test_id("upload").set_input_files(str(path))
    # the image decodes asynchronously; poll the canvas (the page's CSP forbids Playwright's string predicates)
    for _ in range(200):
        if _canvas_ink(page) > 0.01:
            break
        page.wait_for_timeout(50)
    assert _canvas_ink(page) > 0.01, "the uploaded sketch never reached the canvas"
    before = _seeds(page)
    page.get_by_test_id("class").select_option(index=0)
    page.get_by_test_id("generate").click()
    page.locator("figcaption span").nth(1).filter(has_not_text=before[1]).wait_for()
    assert page.get_by_test_id("error").is_hidden()
    assert len(_images(result_pixels(page, 4))) == 4
    assert page.page_errors == []
