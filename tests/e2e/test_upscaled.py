"""A repository with the learned upsampler fused into the generator's graph, served by a real tritonserver: a raw
tritonclient caller that sends the sketch at the published `resolution` gets an image at the published
`image_resolution` (the in-process ONNX's bytes), the client and the gateway hand out the same bytes, and the scorer
scores the larger image."""
import io
import json

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from PIL import Image

from loadtest.callers import raw_inputs
from serving.process import free_port
from serving.server import ServerConfig, TritonServer
from sketchygan_client import SketchClient
from tests.e2e.conftest import start_gateway
from tests.e2e.test_web import _png, call
from triton_repo.runtimes import ort_session, run_ort

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def up_server(upscaled, tmp_path_factory):
    _, repo = upscaled
    cfg = ServerConfig(repository=repo, grpc_port=free_port(), metrics_port=free_port())
    with TritonServer(cfg, log_path=tmp_path_factory.mktemp("triton-up") / "server.log") as srv:
        yield srv, repo


def test_a_raw_caller_sends_the_small_sketch_and_gets_the_large_image(up_server):
    srv, repo = up_server
    rng = np.random.default_rng(3)
    sk = np.where(rng.random((2, 32, 32)) < 0.1, 0, 255).astype(np.uint8)
    cid, z = np.array([[1], [2]], np.int32), rng.standard_normal((2, 8)).astype(np.float32)
    with grpcclient.InferenceServerClient(srv.grpc_url) as raw:
        params = {k: v.string_value for k, v in raw.get_model_config("sketchygan").config.parameters.items()}
        got = raw.infer("sketchygan", raw_inputs(sk, cid, z), client_timeout=60).as_numpy("IMAGE")
    assert (params["resolution"], params["image_resolution"]) == ("32", "64")
    want = run_ort(ort_session(repo / "sketchygan" / "1" / "model.onnx"), sk, cid, z)
    assert got.shape == (2, 64, 64, 3) and np.array_equal(got, want)


def test_the_client_and_the_gateway_give_the_same_large_image_and_its_score(up_server, tmp_path):
    srv, _ = up_server
    sketch = _png(seed=8)
    with SketchClient(srv.grpc_url, timeout_s=60) as c:
        assert (c.info.resolution, c.info.image_resolution) == (32, 64)
        arr, receipt = c.generate_explained(sketch, 1, seed=5)
        assert arr.shape == (64, 64, 3)
        assert receipt.class_confidence is not None and 0.0 <= receipt.class_confidence <= 1.0
        gw = start_gateway(srv.grpc_url, tmp_path / "gateway.log").wait()
        try:
            status, _, body = call(gw.url, "GET", "/v1/classes")
            assert status == 200 and json.loads(body)["image_resolution"] == 64
            status, headers, png = call(gw.url, "POST", "/v1/generate?class=1&seed=5", sketch)
            assert status == 200
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), arr)
            assert float(headers["x-class-confidence"]) == pytest.approx(receipt.class_confidence, abs=1e-3)
        finally:
            gw.stop()
