"""Client pieces without a server: image fitting, contract validation, seed rule, retry book-keeping."""
import io
import time

import numpy as np
import pytest
from PIL import Image

from sketchygan_client.contract import ModelInfo, noise_from_seed
from sketchygan_client.errors import DeadlineExceeded, InvalidInput, ModelNotReady, ServerUnavailable, from_grpc
from sketchygan_client.images import to_sketch
from sketchygan_client.retry import Attempts, RetryPolicy

INFO = ModelInfo("sketchygan", 64, 8, ("cat", "dog"), 16, "abc")


def test_wide_image_is_fitted_keeping_aspect_and_padded_white():
    img = np.zeros((20, 80), np.uint8)  # black 4:1 bar
    out = to_sketch(img, 64)
    assert out.shape == (64, 64)
    assert (out[:20] == 255).all() and (out[-20:] == 255).all()  # white above and below
    assert out[32, 5:59].max() < 40  # the bar spans the width


def test_a_sketch_already_at_the_models_size_passes_through_as_the_same_array():
    sk = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    assert to_sketch(sk, 64) is sk  # no second decode/resize pass in the gateway -> client path
    assert np.array_equal(to_sketch(Image.fromarray(sk), 64), sk)  # the same pixels the full path makes
    assert to_sketch(sk.astype(np.float32), 64).dtype == np.uint8  # any other form still goes the full way


def test_transparent_png_becomes_white_paper():
    rgba = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    rgba.putpixel((5, 5), (0, 0, 0, 255))
    buf = io.BytesIO()
    rgba.save(buf, format="PNG")
    out = to_sketch(buf.getvalue(), 10)
    assert out[0, 0] == 255 and out[5, 5] == 0


def test_bad_images_are_invalid_input(tmp_path):
    with pytest.raises(InvalidInput, match="does not exist"):
        to_sketch(tmp_path / "nope.png", 64)
    with pytest.raises(InvalidInput, match="not a readable image"):
        to_sketch(b"GIF89a-broken", 64)
    with pytest.raises(InvalidInput, match="expected HxW"):
        to_sketch(np.zeros((2, 3, 4, 5)), 64)
    big = Image.new("L", (8000, 6000), 255)
    buf = io.BytesIO()
    big.save(buf, format="PNG")
    with pytest.raises(InvalidInput, match="at most 40000000 pixels"):
        to_sketch(buf.getvalue(), 64)


def test_seed_rule_is_numpy_default_rng_standard_normal():
    a = noise_from_seed(7, 8)
    assert a.dtype == np.float32 and np.array_equal(a, noise_from_seed(7, 8))
    assert np.array_equal(a, np.random.default_rng(7).standard_normal(8, dtype=np.float32))
    assert not np.array_equal(a, noise_from_seed(8, 8))
    with pytest.raises(InvalidInput, match="non-negative integer"):
        noise_from_seed(-1, 8)


def test_class_and_noise_validation():
    assert INFO.class_id("dog") == 1 and INFO.class_id(0) == 0 and INFO.class_id("1") == 1
    with pytest.raises(InvalidInput, match=r"unknown class 'cow'; expected one of \['cat', 'dog'\]"):
        INFO.class_id("cow")
    with pytest.raises(InvalidInput, match="out of range"):
        INFO.class_id(2)
    with pytest.raises(InvalidInput, match="either seed or noise"):
        INFO.noise(1, np.zeros(8))
    with pytest.raises(InvalidInput, match="NaN or Inf"):
        INFO.noise(None, np.array([np.inf] * 8))


def test_model_info_from_triton_config_json():
    cfg = {"config": {"name": "sketchygan", "max_batch_size": 32, "parameters": {
        "resolution": {"string_value": "64"}, "noise_dim": {"string_value": "64"},
        "class_names": {"string_value": '["a", "b"]'}, "checkpoint_sha256": {"string_value": "ff"}}}}
    info = ModelInfo.from_config(cfg)
    assert (info.resolution, info.noise_dim, info.class_names, info.max_batch_size) == (64, 64, ("a", "b"), 32)
    with pytest.raises(InvalidInput, match="does not publish contract parameters"):
        ModelInfo.from_config({"config": {"name": "other"}})


def test_styles_are_read_from_the_config_and_folded_into_the_class_id():
    cfg = {"config": {"name": "sketchygan", "max_batch_size": 16, "parameters": {
        "resolution": {"string_value": "64"}, "noise_dim": {"string_value": "8"},
        "class_names": {"string_value": '["cat", "dog"]'}, "styles": {"string_value": '["photo", "art"]'}}}}
    info = ModelInfo.from_config(cfg)
    assert info.styles == ("photo", "art") and info.default_style == "photo"
    assert [info.wire_class_id("dog", s) for s in (None, "photo", "art", 1, "1")] == [1, 1, 3, 3, 3]
    for bad, message in (("oil", r"unknown style 'oil'; expected one of \['photo', 'art'\]"),
                         (2, r"style 2 is out of range: expected 0 <= style < 2 \(photo, art\)"),
                         (True, "style must be a name or an integer index")):
        with pytest.raises(InvalidInput, match=message):
            info.wire_class_id("dog", bad)
    # a model that publishes no styles: the plain class id, and a style asked of it is an error
    assert INFO.styles == () and INFO.wire_class_id("dog") == 1 == INFO.wire_class_id("dog", 0)
    with pytest.raises(InvalidInput, match="draws one style"):
        INFO.wire_class_id("dog", "art")


def test_retry_backoff_is_bounded_by_count_and_deadline():
    att = Attempts(10.0, RetryPolicy(retries=2, base_delay_s=0.01, max_delay_s=0.02))
    err = ServerUnavailable("down", "UNAVAILABLE", retryable=True)
    assert 0 <= att.backoff(err) <= 0.02 and 0 <= att.backoff(err) <= 0.02
    with pytest.raises(ServerUnavailable):
        att.backoff(err)
    short = Attempts(0.001, RetryPolicy(retries=5, base_delay_s=1.0, max_delay_s=1.0))
    time.sleep(0.002)
    with pytest.raises(DeadlineExceeded):
        short.remaining()


def test_default_policy_retries_until_the_deadline_with_capped_jittered_pauses():
    att = Attempts(60.0, RetryPolicy())
    err = ServerUnavailable("down", "UNAVAILABLE", retryable=True)
    pauses = [att.backoff(err) for _ in range(200)]  # no count limit: only the deadline stops it
    assert max(pauses) <= RetryPolicy().max_delay_s and len(set(pauses)) > 100  # capped and jittered
    near = Attempts(0.05, RetryPolicy(base_delay_s=1.0, max_delay_s=1.0))
    with pytest.raises(ServerUnavailable):  # a pause that would pass the deadline re-raises instead of sleeping
        for _ in range(50):
            near.backoff(err)
    with pytest.raises(InvalidInput):  # final answers are never retried
        Attempts(60.0, RetryPolicy()).backoff(InvalidInput("bad", "INVALID_ARGUMENT"))


def test_queue_timeout_keeps_a_compute_reserve_inside_the_deadline():
    att = Attempts(10.0, RetryPolicy(compute_reserve_s=0.25))
    assert att.queue_timeout_us(10.0) == 9_750_000
    assert att.queue_timeout_us(0.5) == 250_000
    assert att.queue_timeout_us(0.2) == 50_000  # short deadlines: a quarter of what is left still queues
    capped = Attempts(10.0, RetryPolicy(compute_reserve_s=0.25, max_queue_wait_s=0.15))
    assert capped.queue_timeout_us(10.0) == 150_000 and capped.queue_timeout_us(0.2) == 50_000


def test_the_published_cost_of_a_request_counts_its_chunks():
    """`ModelInfo.compute_s`: images x per-image cost + one overhead per chunk of the batch limit; None without a
    published calibration (then the client checks nothing before sending)."""
    info = ModelInfo("m", 64, 8, ("a",), 32, "", 0.2, {"per_image_s": 0.01, "overhead_s": 0.005, "batch_limit": 8})
    assert info.compute_s(1) == pytest.approx(0.015) and info.compute_s(32) == pytest.approx(0.34)
    assert info.compute_s(9) == pytest.approx(0.1)
    assert ModelInfo("m", 64, 8, ("a",), 32, "").compute_s(32) is None


def test_max_queue_wait_must_be_positive():
    from sketchygan_client import SketchClient
    with pytest.raises(ValueError, match="max_queue_wait_s must be positive"):
        SketchClient("127.0.0.1:1", max_queue_wait_s=0)


def test_grpc_status_mapping():
    assert isinstance(from_grpc("StatusCode.INVALID_ARGUMENT", "x"), InvalidInput)
    assert isinstance(from_grpc("StatusCode.UNAVAILABLE", "connection refused"), ServerUnavailable)
    assert isinstance(from_grpc("StatusCode.DEADLINE_EXCEEDED", "late"), DeadlineExceeded)
    assert isinstance(from_grpc("StatusCode.UNAVAILABLE", "Request for unknown model: 'x' is not ready"), ModelNotReady)
    assert isinstance(from_grpc("StatusCode.NOT_FOUND", "Request for unknown model"), ModelNotReady)
    # what Triton 2.51 answers while it recovers or stops: retried ("not executed")
    for status, msg in [("UNAVAILABLE", "failed to connect to all addresses"),
                        ("UNAVAILABLE", "Server is stopping, scheduler for model has stopped accepting new requests"),
                        ("UNAVAILABLE", "Request timeout expired"), ("UNAVAILABLE", "Exceeds maximum queue size"),
                        ("INTERNAL", "Stub process 'sketchygan_0_1' is not healthy."),
                        ("NOT_FOUND", "Request for unknown model: 'sketchygan' has no available versions"),
                        # a call cut off on the wire (a proxy whose replica died resets the caller's stream)
                        ("INTERNAL", "Received RST_STREAM with error code 2"),
                        ("CANCELLED", "Received RST_STREAM with error code 8"),
                        ("UNKNOWN", "Stream removed"), ("UNKNOWN", "Received http2 header with status: 500"),
                        ("INTERNAL", "Received unexpected EOS on DATA frame from server")]:
        assert from_grpc(f"StatusCode.{status}", msg).retryable, (status, msg)
    # final answers: never retried
    for status, msg in [("INVALID_ARGUMENT", "x"), ("NOT_FOUND", "Request for unknown model: 'nope' is not found"),
                        ("INTERNAL", "Failed to process the request(s): RuntimeError"), ("DEADLINE_EXCEEDED", "late"),
                        ("CANCELLED", "Locally cancelled by application!"),
                        ("UNKNOWN", "Exception calling application")]:
        assert not from_grpc(f"StatusCode.{status}", msg).retryable, (status, msg)


def test_client_package_imports_without_torch_or_project_code():
    import subprocess
    import sys
    code = ("import sys, sketchygan_client, sketchygan_client.cli; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'training', 'export', 'serving')]; "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert r.returncode == 0, r.stderr


def test_cli_connection_options_work_after_the_subcommand_too(capsys):
    from sketchygan_client.cli import main
    assert main(["classes", "--url", "127.0.0.1:1", "--timeout", "0.5"]) == 3  # nothing listens on port 1
    assert "127.0.0.1:1" in capsys.readouterr().err
    assert main(["--url", "127.0.0.1:1", "--timeout", "0.5", "health"]) == 3


def test_unreadable_image_message_names_the_input_not_a_python_object(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    for src, name in ((str(bad), str(bad)), (b"not an image", "sketch bytes")):
        with pytest.raises(InvalidInput) as err:
            to_sketch(src, 32)
        assert str(err.value) == f"{name} is not a readable image (PNG/JPEG expected)"


def test_targets_accept_grpc_names_and_refuse_malformed_ones():
    from sketchygan_client.targets import parse, resolve
    assert parse("127.0.0.1:8001").endpoints == (("127.0.0.1", 8001),)
    assert parse("ipv4:127.0.0.1:1,127.0.0.1:2").endpoints == (("127.0.0.1", 1), ("127.0.0.1", 2))
    assert parse("ipv6:[::1]:5").endpoints == (("::1", 5),)
    assert parse("dns:///localhost:7").scheme == "dns"
    assert resolve("ipv4:127.0.0.1:1,127.0.0.1:2,127.0.0.1:1") == ["127.0.0.1:1", "127.0.0.1:2"]
    assert "127.0.0.1:7" in resolve("dns:///localhost:7")
    for bad in ("", "127.0.0.1", "host:port", "ipv4:127.0.0.1:1,nope", "http://x:1", "a:70000", "a b:1"):
        with pytest.raises(InvalidInput):
            parse(bad)
    with pytest.raises(InvalidInput, match="cannot resolve"):
        resolve("dns:///no-such-host.invalid:1")


def test_client_channels_balance_per_call():
    """The channel arguments every client sends: round_robin (gRPC's default pick_first sends all to one)."""
    import json

    from sketchygan_client import SketchClient
    c = SketchClient("ipv4:127.0.0.1:1,127.0.0.1:2", timeout_s=1)
    args = dict(c._kw["channel_args"])
    assert args["grpc.lb_policy_name"] == "round_robin"
    assert json.loads(args["grpc.service_config"]) == {"loadBalancingConfig": [{"round_robin": {}}]}
    assert [r["address"] for r in c.replicas()] == ["127.0.0.1:1", "127.0.0.1:2"]
    assert not any(r["ready"] for r in c.replicas())  # nothing listens there: reported, not raised
    c.close()
    with pytest.raises(InvalidInput, match="not HOST:PORT"):
        SketchClient("localhost")


def test_a_dns_target_gets_a_new_channel_when_its_addresses_change(monkeypatch):
    """gRPC re-resolves only on a lost connection; the client looks the name up again every reresolve_s and
    replaces the channel when the replica set changed (a pod added behind a headless Service)."""
    from sketchygan_client import SketchClient, targets
    found = [["10.0.0.1:8001"]]
    monkeypatch.setattr(targets, "resolve", lambda text: found[0])
    c = SketchClient("dns:///sketchygan-headless:8001", timeout_s=1)
    c.reresolve_s = 0.0
    first = c._client
    c._refresh()  # the first lookup only records the addresses
    assert c._client is first
    c._refresh()
    assert c._client is first  # unchanged
    found[0] = ["10.0.0.1:8001", "10.0.0.2:8001"]
    c._refresh()
    assert c._client is not first and c._retired == [first]
    c.close()
    literal = SketchClient("127.0.0.1:1", timeout_s=1)
    literal.reresolve_s = 0.0
    assert not literal._due_for_resolution()  # an IP address is never looked up
    literal.close()


def test_a_receipt_as_headers_quotes_the_class_and_names_a_style_only_when_there_is_one():
    import hashlib

    from sketchygan_client import Receipt, sketch_digest
    r = Receipt("sketchygan", "1", "ab" * 32, "openvino", "animal mammal/ü", None, 7, sketch_digest(np.zeros((4, 4))))
    h = r.headers()
    assert h["x-class"] == "animal%20mammal/%C3%BC" and h["x-seed"] == "7" and "x-style" not in h
    assert all(v.isascii() for v in h.values())
    assert h["x-sketch-sha256"] == hashlib.sha256(bytes(16)).hexdigest()
    assert Receipt(*[*r.as_dict().values()][:5], "art", 7, r.sketch_sha256).headers()["x-style"] == "art"
