"""The HTTP gateway (`python -m web`) as a real process in front of a real tritonserver: same pixels as the client
library, a JSON error with the right status for every bad input (and still healthy after), 503 while tritonserver
is away and recovery when it is back, 504 at the deadline, and its own Prometheus metrics."""
import http.client
import io
import json
import re
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image, ImageDraw

from sketchygan_client import SketchClient
from tests.e2e.conftest import counted


def _png(size=(120, 90), seed=0, fmt="PNG") -> bytes:
    """A sketch of any size: black strokes on white."""
    rng = np.random.default_rng(seed)
    im = Image.new("L", size, 255)
    d = ImageDraw.Draw(im)
    for _ in range(4):
        d.line([tuple(rng.integers(0, size[0], 2)), tuple(rng.integers(0, size[1], 2))], fill=0, width=2)
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def call(base: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, headers, body) of one HTTP request; HTTP error statuses are answers, not exceptions."""
    req = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def error_of(status_headers_body) -> str:
    status, headers, body = status_headers_body
    assert headers["content-type"] == "application/json", (status, body[:200])
    return json.loads(body)["error"]


@pytest.fixture(scope="module")
def client(server):
    with SketchClient(server.grpc_url, timeout_s=30) as c:
        yield c


def test_classes_and_health_come_from_the_served_model(gateway, client):
    status, _, body = call(gateway.url, "GET", "/v1/classes")
    assert status == 200
    # a one-style model (styles: test_styles.py) that answers images at the sketch's side (upsampled: test_upscaled.py)
    assert json.loads(body) == {"classes": list(client.classes), "resolution": client.resolution,
                                "image_resolution": client.resolution, "styles": [], "default_style": None}
    status, _, body = call(gateway.url, "GET", "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ready"


@pytest.mark.parametrize("fmt, size, cls", [("PNG", (120, 90), "name"), ("JPEG", (33, 200), "id")])
def test_generate_is_the_same_pixels_as_the_client_library(gateway, client, fmt, size, cls):
    sketch = _png(size, seed=3, fmt=fmt)
    name = client.classes[1]
    status, headers, body = call(gateway.url, "POST", f"/v1/generate?class={name if cls == 'name' else 1}&seed=7",
                                 sketch, {"content-type": f"image/{fmt.lower()}"})
    assert status == 200 and headers["content-type"] == "image/png"
    assert headers["x-seed"] == "7" and headers["x-class"] == name
    got = np.asarray(Image.open(io.BytesIO(body)))
    want = client.generate_array(sketch, name, seed=7)
    assert got.shape == want.shape == (client.resolution, client.resolution, 3)
    assert np.array_equal(got, want)


def test_omitted_seed_is_random_and_returned_so_the_image_can_be_reproduced(gateway, client):
    sketch = _png(seed=4)
    answers = [call(gateway.url, "POST", "/v1/generate?class=0", sketch) for _ in range(3)]
    seeds = [int(h["x-seed"]) for s, h, _ in answers if s == 200]
    assert len(seeds) == 3 and len(set(seeds)) == 3, seeds
    status, _, again = call(gateway.url, "POST", f"/v1/generate?class=0&seed={seeds[0]}", sketch)
    assert status == 200 and again == answers[0][2]


def test_each_image_comes_with_its_receipt_in_headers(gateway, client):
    """Which model made the image and how to make it again, as headers: the same receipt the client library gives
    for the same upload, and its seed and class make the same bytes again."""
    sketch = _png(seed=5)
    status, headers, body = call(gateway.url, "POST", "/v1/generate?class=1", sketch)
    assert status == 200
    receipt = {k: headers[k] for k in ("x-model", "x-model-version", "x-checkpoint-sha256", "x-runtime", "x-class",
                                       "x-seed", "x-sketch-sha256", "x-class-confidence", "x-precision")}
    arr, r = client.generate_explained(sketch, 1, seed=int(headers["x-seed"]))
    assert receipt == r.headers() and "x-style" not in headers  # a one-style model
    assert receipt["x-checkpoint-sha256"] == client.info.checkpoint_sha256 and receipt["x-model-version"] == "1"
    assert receipt["x-precision"] == client.info.precision == "f32"  # what the test repository computes in
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(body))), arr)
    # the score: what the server's scorer says of the very image answered, about the class asked for
    assert 0 <= float(headers["x-class-confidence"]) <= 1
    assert float(headers["x-class-confidence"]) == pytest.approx(float(client.score(arr[None], [1])[0]), abs=1e-4)


def _photo(alpha: bool = False, size=(240, 160), fmt="PNG") -> tuple[bytes, Image.Image]:
    """A photo-like image: an orange disc on a blue backdrop (or alone on transparency)."""
    im = Image.new("RGBA", size, (40, 110, 200, 0 if alpha else 255))
    ImageDraw.Draw(im).ellipse((60, 30, 180, 150), fill=(240, 150, 30, 255))
    buf = io.BytesIO()
    (im if alpha else im.convert("RGB")).save(buf, format=fmt)
    return buf.getvalue(), im


def test_a_photo_becomes_the_sketch_the_training_data_would_have_made(gateway, client):
    """POST /v1/sketch: an opaque photo -> centre square at the model's size -> the training data's photo edge map;
    a cut-out photo -> fitted on white -> edges plus silhouette. The answer is a sketch the model accepts."""
    from training.edges import cutout_photo_edge_map, photo_edge_map
    s = client.resolution
    body, im = _photo()
    status, headers, png = call(gateway.url, "POST", "/v1/sketch", body, {"content-type": "image/png"})
    assert status == 200 and headers["content-type"] == "image/png"
    got = np.asarray(Image.open(io.BytesIO(png)))
    square = im.convert("RGB").crop((40, 0, 200, 160)).resize((s, s), Image.BICUBIC)
    assert got.shape == (s, s) and np.array_equal(got, photo_edge_map(np.asarray(square)))
    assert 0 < (got < 128).mean() < 0.5  # a contour, not a blank or a filled page
    body, im = _photo(alpha=True)
    status, _, png = call(gateway.url, "POST", "/v1/sketch", body)
    cut = np.asarray(Image.open(io.BytesIO(png)))
    fitted = im.resize((s, round(160 * s / 240)), Image.BICUBIC)
    canvas = Image.new("RGBA", (s, s), (255, 255, 255, 0))
    canvas.paste(fitted, (0, (s - fitted.height) // 2))
    white = Image.alpha_composite(Image.new("RGBA", (s, s), (255, 255, 255, 255)), canvas).convert("RGB")
    assert status == 200 and np.array_equal(cut, cutout_photo_edge_map(np.asarray(white), np.asarray(canvas)[..., 3]))
    status, _, _ = call(gateway.url, "POST", "/v1/generate?class=0&seed=1", png)  # the sketch is a valid request
    assert status == 200


@pytest.mark.parametrize("body, status, pattern", [
    (b"", 400, "empty body: send the photo"),
    (b"\x89PNG\r\n\x1a\n garbage", 400, "not a readable image"),
])
def test_a_bad_photo_gets_a_json_error_and_the_gateway_stays_healthy(gateway, body, status, pattern):
    answer = call(gateway.url, "POST", "/v1/sketch", body)
    assert answer[0] == status and re.search(pattern, error_of(answer)), answer[2][:200]
    assert call(gateway.url, "GET", "/healthz")[0] == 200


def test_every_class_at_once_is_one_png_from_batched_calls(gateway, client, server):
    """POST /v1/grid: rows = the model's classes, columns = seeds seed, seed+1, ...; each cell is what the client
    gives for that class and seed, and the whole grid took ceil(cells / max_batch_size) requests of the server."""
    import math
    from urllib.parse import unquote

    from loadtest.triton_metrics import scrape
    sketch, k, s = _png(seed=6), 3, client.resolution
    before = scrape(server.metrics_url)
    status, headers, body = call(gateway.url, "POST", f"/v1/grid?seeds={k}&seed=11", sketch)
    assert status == 200 and headers["content-type"] == "image/png"
    classes = json.loads(unquote(headers["x-grid-classes"]))
    calls = math.ceil(len(classes) * k / client.info.max_batch_size)
    requests = counted(server.metrics_url, before, "nv_inference_request_success",
                       calls)["nv_inference_request_success"]
    assert classes == list(client.classes) and headers["x-grid-seeds"] == "11,12,13"
    assert headers["x-checkpoint-sha256"] == client.info.checkpoint_sha256
    grid = np.asarray(Image.open(io.BytesIO(body)))
    assert grid.shape == (len(classes) * s, k * s, 3)
    for c, name in enumerate(classes):
        for j in range(k):
            cell = grid[c * s:(c + 1) * s, j * s:(j + 1) * s]
            assert np.abs(cell.astype(np.int16) - client.generate_array(sketch, name, seed=11 + j)).max() <= 1
    assert requests == calls, requests
    # every cell's class confidence (rows = classes): what the scorer says of that cell about its row's class
    conf = np.array(json.loads(headers["x-grid-confidence"]))
    assert conf.shape == (len(classes), k) and ((conf >= 0) & (conf <= 1)).all()
    cells = grid.reshape(len(classes), s, k, s, 3).transpose(0, 2, 1, 3, 4).reshape(-1, s, s, 3)
    want = client.score(cells, [c for c in range(len(classes)) for _ in range(k)]).reshape(len(classes), k)
    np.testing.assert_allclose(conf, want, atol=1e-3)


@pytest.mark.parametrize("path, pattern", [
    ("/v1/grid?seeds=0", r"seeds must be an integer 1\.\.8"),
    ("/v1/grid?seeds=9", r"seeds must be an integer 1\.\.8"),
    ("/v1/grid?seeds=x", r"seeds must be an integer"),
    ("/v1/grid?style=nope", r"style"),
    ("/v1/variations?class=0", r"seeds must be 1\.\.8 comma-separated"),
    ("/v1/variations?class=0&seeds=1,2,3,4,5,6,7,8,9", r"seeds must be 1\.\.8"),
    ("/v1/variations?class=0&seeds=1,,2", r"comma-separated integers"),
    ("/v1/variations?seeds=1,2", r"missing query parameter 'class'")])
def test_a_bad_grid_or_variations_request_gets_a_json_400(gateway, path, pattern):
    answer = call(gateway.url, "POST", path, _png())
    assert answer[0] == 400 and re.search(pattern, error_of(answer)), answer[2][:200]


def test_variations_are_one_batched_call_with_each_seeds_image_and_receipt(server, gateway, client):
    """What the playground sends per drawing update: one request for every seed, computed as one batched model call
    per model instance (in parallel); each image what the client library makes for that seed (within a level:
    batched), each with its receipt and class confidence."""
    import base64

    from loadtest.triton_metrics import scrape
    sketch, seeds = _png(seed=8), [5, 6, 7, 8]
    before = scrape(server.metrics_url)
    status, headers, body = call(gateway.url, "POST", f"/v1/variations?class=1&seeds={','.join(map(str, seeds))}",
                                 sketch)
    assert status == 200 and headers["content-type"] == "application/json", body[:200]
    parts = min(len(seeds), client.info.instances)  # the seeds spread over the model's instances, one request each
    requests = counted(server.metrics_url, before, "nv_inference_request_success",
                       parts)["nv_inference_request_success"]
    answers = json.loads(body)["images"]
    assert [a["receipt"]["seed"] for a in answers] == seeds
    for seed, a in zip(seeds, answers):
        got = np.asarray(Image.open(io.BytesIO(base64.b64decode(a["png"]))))
        want, receipt = client.generate_explained(sketch, 1, seed=seed)
        assert np.abs(got.astype(np.int16) - want).max() <= 1
        assert a["receipt"] == {**receipt.as_dict(), "class_confidence": a["receipt"]["class_confidence"]}
        assert abs(a["receipt"]["class_confidence"] - receipt.class_confidence) < 1e-2
    assert client.info.instances == 2 and requests == parts == 2, requests  # one call per instance, not per seed


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (8000, 8000), 1).save(buf, format="PNG")  # 64 Mpx, a few KB compressed
    return buf.getvalue()


# (query, body, status, what the error must say); bodies over the limit: the two 413 tests below
BAD = [
    ("class=no-such-class&seed=1", _png(), 400, r"unknown class 'no-such-class'; expected one of"),
    ("class=99&seed=1", _png(), 400, r"class id 99 is out of range"),
    ("seed=1", _png(), 400, r"missing query parameter 'class'"),
    ("class=0&seed=-3", _png(), 400, r"seed must be an integer 0\.\.9223372036854775807, got '-3'"),
    ("class=0&seed=abc", _png(), 400, r"seed must be an integer"),
    ("class=0&seed=9223372036854775808", _png(), 400, r"seed must be an integer"),
    ("class=0&seed=1", b"", 400, r"empty body"),
    ("class=0&seed=1", b"this is not an image", 400, r"not a readable image \(PNG/JPEG expected\)"),
    ("class=0&seed=1", _png()[:60], 400, r"not a readable image"),
    ("class=0&seed=1", _bomb(), 400, r"at most 40000000 pixels"),
]


@pytest.mark.parametrize("query, body, status, pattern", BAD, ids=[b[3][:30] for b in BAD])
def test_bad_input_gets_its_status_and_json_error_and_gateway_stays_healthy(gateway, query, body, status, pattern):
    answer = call(gateway.url, "POST", f"/v1/generate?{query}", body)
    assert answer[0] == status, answer[2][:300]
    assert re.search(pattern, error_of(answer)), error_of(answer)
    assert call(gateway.url, "GET", "/healthz")[0] == 200
    assert call(gateway.url, "POST", "/v1/generate?class=0&seed=1", _png())[0] == 200


def test_unknown_route_and_wrong_method_are_json_errors(gateway):
    assert error_of(answer := call(gateway.url, "GET", "/nope")) == "Not Found" and answer[0] == 404
    assert call(gateway.url, "GET", "/v1/generate")[0] == 405


def test_oversized_body_is_refused_from_its_declared_length_before_it_is_sent(gateway):
    """A client declaring 1 GB gets 413 at once: if the gateway waited for the body, this would time out."""
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    conn.putrequest("POST", "/v1/generate?class=0")
    conn.putheader("Content-Length", str(1 << 30))
    conn.putheader("Content-Type", "image/png")
    conn.endheaders()
    conn.send(b"\x89PNG")
    r = conn.getresponse()
    assert r.status == 413 and "at most 4194304 bytes" in json.loads(r.read())["error"]
    conn.close()


def test_oversized_chunked_body_is_refused_while_streaming(gateway):
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    chunks = (b"\0" * (1 << 20) for _ in range(6))  # 6 MiB in 1 MiB chunks, no Content-Length
    conn.request("POST", "/v1/generate?class=0", body=chunks, encode_chunked=True,
                 headers={"Transfer-Encoding": "chunked"})
    r = conn.getresponse()
    assert r.status == 413 and "at most 4194304 bytes" in json.loads(r.read())["error"]
    conn.close()


def test_gateway_metrics_count_requests_by_route_and_status(gateway):
    call(gateway.url, "POST", "/v1/generate?class=no-such-class", _png())
    call(gateway.url, "POST", "/v1/generate?class=0&seed=2", _png())
    status, headers, body = call(gateway.url, "GET", "/metrics")
    text = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")

    def value(pattern):
        m = re.search(pattern + r" ([0-9.e+]+)", text)
        assert m, pattern
        return float(m.group(1))

    assert value(r'sketchygan_gateway_requests_total\{route="/v1/generate",status="400"\}') >= 1
    assert value(r'sketchygan_gateway_requests_total\{route="/v1/generate",status="200"\}') >= 1
    assert value(r'sketchygan_gateway_request_seconds_count\{route="/v1/generate"\}') >= 2
    assert value(r'sketchygan_client_requests_total\{code="OK",method="generate",outcome="success"\}') >= 1
