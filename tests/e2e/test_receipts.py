"""What comes with each image through the client: a receipt that makes it again (model, version, checkpoint,
runtime, class, style, seed, the sketch's digest) and the scorer's class confidence, asked only when shown."""
import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from PIL import Image
from tritonclient.utils import InferenceServerException

from loadtest.triton_metrics import scrape
from sketchygan_client import InvalidInput, SketchClient
from tests.e2e.conftest import counted
from tests.e2e.test_client import _sketch
from triton_repo.runtimes import ort_session


@pytest.fixture(scope="module")
def client(server):
    with SketchClient(server.grpc_url, timeout_s=30) as c:
        yield c


def test_an_image_comes_with_a_receipt_that_makes_it_again(server, client, tmp_path):
    """Which model made it (name, the answering version, checkpoint, runtime) and how to make it again (class, style,
    seed, the sketch's SHA-256): the receipt's values re-create the same bytes; async client and CLI say the same."""
    import asyncio
    import hashlib
    import json

    from sketchygan_client import AsyncSketchClient
    from sketchygan_client.images import to_sketch

    big = Image.fromarray(_sketch(5, size=50))  # any size: the digest names the sketch as the model saw it
    arr, r = client.generate_explained(big, "star")  # no seed: a random one, returned in the receipt
    with grpcclient.InferenceServerClient(server.grpc_url) as raw:
        cfg = raw.get_model_config("sketchygan", as_json=True)["config"]
    params = {k: v["string_value"] for k, v in cfg["parameters"].items()}
    assert (r.model, r.model_version) == ("sketchygan", "1")
    assert (r.checkpoint_sha256, r.runtime) == (params["checkpoint_sha256"], params["runtime"])
    assert r.class_name == "star" and r.style is None and r.seed >= 0
    assert r.sketch_sha256 == hashlib.sha256(to_sketch(big, 32).tobytes()).hexdigest()
    assert np.array_equal(client.generate_array(big, r.class_name, seed=r.seed), arr)
    assert client.generate_explained(big, "star")[1].seed != r.seed  # a fresh random seed per call

    async def explained():
        async with AsyncSketchClient(server.grpc_url, timeout_s=30) as ac:
            return await ac.generate_explained(big, "star", seed=r.seed)
    a_arr, a_r = asyncio.run(explained())
    assert np.abs(a_arr.astype(np.int16) - arr).max() <= 1
    # the same receipt; the score is the same where the bytes are (a batch may move a level: then the score moves)
    assert dataclasses.replace(a_r, class_confidence=None) == dataclasses.replace(r, class_confidence=None)
    assert a_r.class_confidence == pytest.approx(r.class_confidence, abs=0 if np.array_equal(a_arr, arr) else 0.05)

    sk = tmp_path / "s.png"
    big.save(sk)
    cli = [sys.executable, "-m", "sketchygan_client.cli", "--url", server.grpc_url]
    # a plain generate asks the generator only: the score is one more round trip, made when --explain shows it
    before = {m: scrape(server.metrics_url, model=m) for m in ("sketchygan", "sketchygan_score")}
    plain = subprocess.run(cli + ["generate", str(sk), "--class", "star", "--seed", str(r.seed), "-o",
                                  str(tmp_path / "p.png")], capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0 and "{" not in plain.stdout, plain.stderr
    counted(server.metrics_url, before["sketchygan"], "nv_inference_request_success", 1)
    scored = scrape(server.metrics_url, model="sketchygan_score").get("nv_inference_request_success", 0)
    assert scored == before["sketchygan_score"].get("nv_inference_request_success", 0)
    out = subprocess.run(cli + ["generate", str(sk), "--class", "star", "--seed", str(r.seed), "--explain", "-o",
                                str(tmp_path / "o.png")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout[out.stdout.index("{"):])
    assert printed == {**r.as_dict()}
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o.png")), arr)


def test_each_image_comes_with_the_scorers_class_confidence(server, client, exported):
    """The scorer beside the generator (model sketchygan_score): the receipt's confidence is what the exported scorer
    says of the very image returned; a batch is scored in one call, each image about its own class; bad input is a
    clear error, locally or from the server for that request only; Triton counts the scorer's work."""
    _, repo, _ = exported
    sess = ort_session(repo / "sketchygan_score" / "1" / "model.onnx")

    def scorer(images, classes):
        return sess.run(["CONFIDENCE"], {"IMAGE": images, "CLASS_ID": np.array(classes, np.int32)[:, None]})[0][:, 0]

    before = scrape(server.metrics_url, model="sketchygan_score")
    arr, r = client.generate_explained(_sketch(6), "square", seed=3)
    assert client.has_scorer() and 0.0 <= r.class_confidence <= 1.0
    assert r.class_confidence == pytest.approx(float(scorer(arr[None], [1])[0]), abs=1e-6)
    classes = [i % 4 for i in range(6)]
    images = client.generate_batch_array([_sketch(i) for i in range(6)], classes, seeds=list(range(6)))
    np.testing.assert_allclose(client.score(images, classes), scorer(images, classes), atol=1e-5)
    # one image asked about every class: its class probabilities, which sum to 1
    assert float(client.score(np.repeat(images[:1], 4, 0), ["circle", "square", "star", "triangle"]).sum()) == \
        pytest.approx(1.0, abs=1e-4)
    with pytest.raises(InvalidInput, match="uint8"):
        client.score(images.astype(np.float32), classes)
    with pytest.raises(InvalidInput, match="unknown class"):
        client.score(images[:1], ["hexagon"])
    with grpcclient.InferenceServerClient(server.grpc_url) as raw:
        ins = [grpcclient.InferInput("IMAGE", [1, 32, 32, 3], "UINT8"),
               grpcclient.InferInput("CLASS_ID", [1, 1], "INT32")]
        ins[0].set_data_from_numpy(images[:1])
        ins[1].set_data_from_numpy(np.array([[4]], np.int32))  # a wire id with a style offset is not a class here
        with pytest.raises(InferenceServerException, match="out of range"):
            raw.infer("sketchygan_score", ins)
    assert client.score(images[:1], [0]).shape == (1,)  # and the scorer still serves
    d = counted(server.metrics_url, before, "nv_inference_request_success", 5, model="sketchygan_score")
    assert d["sketchygan_images_scored"] >= 1 + 6 + 4 + 1
    assert d["sketchygan_score_requests_refused"] == 1  # the out-of-range class (Triton counts it as a success)


def test_a_server_without_a_scorer_gives_images_without_a_confidence(patient_server):
    """A repository exported without a scorer (`--scorer none`): images and receipts as before, no confidence."""
    with SketchClient(patient_server.grpc_url, timeout_s=30) as c:
        arr, r = c.generate_explained(_sketch(7), "star", seed=1)
        assert arr.shape == (32, 32, 3) and not c.has_scorer()
        assert r.class_confidence is None and "x-class-confidence" not in r.headers()
