"""A two-style generator (photo, the default, and art) exported and served by a real tritonserver: the client, a
raw tritonclient caller, the HTTP gateway and the model's validation all agree on CLASS_ID = class + style x classes,
and a caller that names no style gets the default style's pixels."""
import dataclasses
import json

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from loadtest.callers import raw_inputs
from serving.process import free_port
from serving.server import ServerConfig, TritonServer
from sketchygan_client import InvalidInput, SketchClient
from tests.e2e.conftest import start_gateway
from tests.e2e.test_web import _png, call, error_of

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def styled_server(tiny_checkpoint, tiny_data, tmp_path_factory):
    from export.pipeline import run_export
    from training.config import preset
    from training.data import merge_styles as merge
    from training.train import RunOptions, Trainer
    from triton_repo.serving_config import Limits, ServingConfig
    photo = dataclasses.replace(tiny_data, photos=255 - tiny_data.photos)  # a second "style": the negatives
    data = merge({"photo": photo, "art": tiny_data}, tiny_data.class_names)
    out = tmp_path_factory.mktemp("styled-run")
    m, t = preset("tiny")
    Trainer(m, dataclasses.replace(t, steps=6), data, RunOptions(out=out, preset="tiny", progress=False,
                                                                 finetune_from=tiny_checkpoint)).run()
    base = tmp_path_factory.mktemp("styled-export")
    run_export(out / "generator.safetensors", base / "repo", base / "gpu", ["cpu"],
               ServingConfig(max_batch_size=8, limits=Limits("onnxruntime")), "tiny", 35.0,
               photo_judge_steps=None)  # its judge would train on the real photos and art
    cfg = ServerConfig(repository=base / "repo", grpc_port=free_port(), metrics_port=free_port())
    srv = TritonServer(cfg, log_path=tmp_path_factory.mktemp("styled-triton") / "server.log")
    srv.start()
    yield srv
    srv.stop()


def _one(res=32, nd=8, cls=1, seed=3):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (1, res, res), dtype=np.uint8), np.array([[cls]], np.int32),
            rng.standard_normal((1, nd)).astype(np.float32))


def test_every_caller_agrees_on_the_style_and_no_style_means_the_default(styled_server, tmp_path):
    with SketchClient(styled_server.grpc_url, timeout_s=30) as c:
        info = c.info
        assert info.styles == ("photo", "art") and info.default_style == "photo"
        sk = np.where(np.random.default_rng(0).random((32, 32)) < 0.1, 0, 255).astype(np.uint8)
        default = c.generate_array(sk, 1, seed=5)
        photo = c.generate_array(sk, 1, seed=5, style="photo")
        art = c.generate_array(sk, 1, seed=5, style="art")
        assert (default == photo).all() and not (photo == art).all()
        assert (c.generate_array(sk, 1, seed=5, style=1) == art).all()
        with pytest.raises(InvalidInput, match=r"unknown style 'oil'; expected one of \['photo', 'art'\]"):
            c.generate_array(sk, 1, seed=5, style="oil")
    # a raw tritonclient caller that knows nothing of styles: class ids 0..C-1 are the default style; C.. the next
    n = len(info.class_names)
    with grpcclient.InferenceServerClient(styled_server.grpc_url) as raw:
        plain = raw.infer("sketchygan", raw_inputs(*_one(cls=2))).as_numpy("IMAGE")
        with SketchClient(styled_server.grpc_url, timeout_s=30) as c:
            sketch, _, z = _one(cls=2)
            assert (plain[0] == c.generate_array(sketch[0], 2, noise=z[0])).all()
            assert (raw.infer("sketchygan", raw_inputs(*_one(cls=2 + n))).as_numpy("IMAGE")[0] ==
                    c.generate_array(sketch[0], 2, noise=z[0], style="art")).all()
        with pytest.raises(InferenceServerException, match=rf"CLASS_ID {2 * n} is out of range: expected 0 <= "
                                                           rf"CLASS_ID < {2 * n} \(class \+ style x {n}; styles "
                                                           rf"photo, art\)"):
            raw.infer("sketchygan", raw_inputs(*_one(cls=2 * n)))
    # the gateway: styles listed, chosen by name, the default when absent, a clear 400 for an unknown one
    gw = start_gateway(styled_server.grpc_url, tmp_path / "gateway.log").wait(ready=False)
    try:
        status, _, body = call(gw.url, "GET", "/v1/classes")
        listed = json.loads(body)
        assert status == 200 and listed["styles"] == ["photo", "art"] and listed["default_style"] == "photo"
        sketch = _png(seed=1)
        a = call(gw.url, "POST", "/v1/generate?class=1&seed=9", sketch, {"content-type": "image/png"})
        b = call(gw.url, "POST", "/v1/generate?class=1&seed=9&style=photo", sketch, {"content-type": "image/png"})
        d = call(gw.url, "POST", "/v1/generate?class=1&seed=9&style=art", sketch, {"content-type": "image/png"})
        assert a[0] == b[0] == d[0] == 200 and a[2] == b[2] != d[2]
        assert a[1]["x-style"] == "photo" and d[1]["x-style"] == "art"
        bad = call(gw.url, "POST", "/v1/generate?class=1&style=oil", sketch, {"content-type": "image/png"})
        assert bad[0] == 400 and "unknown style 'oil'" in error_of(bad)
    finally:
        gw.stop()


def test_the_shipped_repository_answers_a_raw_call_that_names_no_style_with_a_photograph(default_repo, tmp_path):
    """`make serve`'s model (the shipped checkpoint, exported with the default serving config): it publishes the
    styles photo (the default) and art, and a raw tritonclient call with a plain class id gets the photo style's
    bytes, the art style only with CLASS_ID + classes."""
    import hashlib

    from tests.e2e.conftest import ROOT
    shipped = ROOT / "checkpoints" / "sketchygan-cpu.safetensors"
    cfg = ServerConfig(repository=default_repo, grpc_port=free_port(), metrics_port=free_port())
    with TritonServer(cfg, log_path=tmp_path / "server.log") as srv, SketchClient(srv.grpc_url, timeout_s=60) as c:
        info = c.info
        assert info.styles == ("photo", "art") and info.default_style == "photo"
        assert info.checkpoint_sha256 == hashlib.sha256(shipped.read_bytes()).hexdigest()
        n, res, nd = len(info.class_names), info.resolution, info.noise_dim
        assert (res, info.image_resolution) == (64, 128)  # 64 px sketches in, the upsampled 128 px photograph out
        sk, _, z = _one(res, nd, seed=11)
        cls = info.class_names.index("animal-marine")
        photo = c.generate_array(sk[0], cls, noise=z[0], style="photo")
        art = c.generate_array(sk[0], cls, noise=z[0], style="art")
        with grpcclient.InferenceServerClient(srv.grpc_url) as raw:
            plain = raw.infer("sketchygan", raw_inputs(sk, np.array([[cls]], np.int32), z),
                              client_timeout=60).as_numpy("IMAGE")[0]
            art_raw = raw.infer("sketchygan", raw_inputs(sk, np.array([[cls + n]], np.int32), z),
                                client_timeout=60).as_numpy("IMAGE")[0]
        assert np.array_equal(plain, photo) and np.array_equal(art_raw, art) and plain.shape == (128, 128, 3)
        assert np.abs(photo.astype(int) - art.astype(int)).mean() > 2  # two looks, not one
