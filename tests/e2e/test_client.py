"""The client library and CLI against a real tritonserver: bytes, batching, bad input, security, restarts."""
import concurrent.futures as cf
import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from PIL import Image
from tritonclient.utils import InferenceServerException

from loadtest.callers import raw_inputs
from loadtest.triton_metrics import average_batch, scrape
from serving.process import free_port
from serving.server import ServerConfig, TritonServer
from serving.stubs import stubs_of
from sketchygan_client import ClientMetrics, InvalidInput, ServerUnavailable, SketchClient, noise_from_seed
from tests.e2e.conftest import counted
from triton_repo.runtimes import ort_session, run_ort

ROOT = Path(__file__).resolve().parents[2]


def _sketch(seed=0, size=32):
    rng = np.random.default_rng(seed)
    img = np.full((size, size), 255, np.uint8)
    img[rng.integers(0, size, 40), rng.integers(0, size, 40)] = 0
    return img


@pytest.fixture(scope="module")
def client(server):
    with SketchClient(server.grpc_url, timeout_s=30) as c:
        yield c


def test_client_discovers_the_contract_from_the_model_config(client):
    assert client.classes == ("circle", "square", "star", "triangle")
    assert client.resolution == 32 and client.info.noise_dim == 8 and client.info.max_batch_size == 16


def test_generate_equals_onnxruntime_in_process(client, exported):
    _, repo, _ = exported
    sk = _sketch(1)
    img = client.generate(sk, "star", seed=7)
    assert img.mode == "RGB" and img.size == (32, 32)
    ref = run_ort(ort_session(repo / "sketchygan" / "1" / "model.onnx"), sk[None], np.array([[2]], np.int32),
                  noise_from_seed(7, 8)[None])[0]
    assert np.array_equal(np.asarray(img), ref)
    assert np.array_equal(client.generate_array(sk, 2, seed=7), ref)  # class by id, same seed -> same bytes


def test_any_image_size_is_fitted_and_padded_white(client):
    from sketchygan_client.images import to_sketch
    big = Image.fromarray(np.kron(_sketch(2), np.ones((3, 5), np.uint8)))  # 96 high x 160 wide, not square
    buf = io.BytesIO()
    big.save(buf, format="PNG")
    fitted = to_sketch(buf.getvalue(), 32)
    assert fitted.shape == (32, 32)
    assert fitted[:5].min() == 255 and fitted[-5:].min() == 255  # 32 wide -> ~19 rows of drawing, white above/below
    assert fitted[8:24].min() < 255  # the drawing itself survived the fit
    out = client.generate_array(buf.getvalue(), "circle", seed=1)
    assert out.shape == (32, 32, 3) and np.array_equal(out, client.generate_array(fitted, "circle", seed=1))


def test_dynamic_batching_batches_and_stays_batch_invariant(client, server):
    before = scrape(server.metrics_url)
    sketches = [_sketch(10 + i) for i in range(24)]
    alone = client.generate_array(sketches[5], "square", seed=5)
    with cf.ThreadPoolExecutor(12) as pool:
        outs = list(pool.map(lambda i: client.generate_array(sketches[i], "square", seed=i), range(24)))
    d = counted(server.metrics_url, before, "nv_inference_count", 25)
    assert d["nv_inference_count"] == 25 and average_batch(d) > 1.0, d
    assert np.abs(outs[5].astype(np.int16) - alone).max() <= 1


def test_generate_batch_splits_above_max_batch_size(client):
    outs = client.generate_batch_array([_sketch(i) for i in range(20)], ["circle"] * 20, list(range(20)))
    assert outs.shape == (20, 32, 32, 3)


@pytest.mark.parametrize("case, pattern", [
    ("dtype", "SKETCH"), ("shape", "SKETCH"), ("bytes", "byte size|unexpected"), ("batch", "batch-size must be <= 16"),
    ("input", "BOGUS|unexpected inference input"), ("model", "nothere|unknown model|not found"),
    ("class", "CLASS_ID 9 is out of range"), ("nan", "NOISE contains NaN"),
])
def test_bad_raw_requests_get_clear_errors_and_server_stays_ready(server, case, pattern):
    sk, cid, z = np.full((1, 32, 32), 255, np.uint8), np.zeros((1, 1), np.int32), np.zeros((1, 8), np.float32)
    model = "sketchygan"
    ins = raw_inputs(sk, cid, z)
    if case == "dtype":
        ins[0] = grpcclient.InferInput("SKETCH", [1, 32, 32], "FP32")
        ins[0].set_data_from_numpy(sk.astype(np.float32))
    elif case == "shape":
        ins[0] = grpcclient.InferInput("SKETCH", [1, 16, 16], "UINT8")
        ins[0].set_data_from_numpy(sk[:, :16, :16].copy())
    elif case == "bytes":
        ins[0] = grpcclient.InferInput("SKETCH", [1, 10, 10], "UINT8")
        ins[0].set_data_from_numpy(np.zeros((1, 10, 10), np.uint8))
        ins[0].set_shape([1, 32, 32])  # claims 1x32x32 but carries 100 bytes
    elif case == "batch":
        n = 17
        ins = raw_inputs(np.repeat(sk, n, 0), np.repeat(cid, n, 0), np.repeat(z, n, 0))
    elif case == "input":
        ins[2] = grpcclient.InferInput("BOGUS", [1, 8], "FP32")
        ins[2].set_data_from_numpy(z)
    elif case == "model":
        model = "nothere"
    elif case == "class":
        ins = raw_inputs(sk, np.array([[9]], np.int32), z)
    elif case == "nan":
        ins = raw_inputs(sk, cid, np.full((1, 8), np.nan, np.float32))
    with grpcclient.InferenceServerClient(server.grpc_url) as c:
        with pytest.raises(InferenceServerException) as err:
            c.infer(model, ins, client_timeout=30)
        assert re.search(pattern, str(err.value), re.I), str(err.value)
        assert c.is_server_live() and c.is_model_ready("sketchygan")


def test_client_validates_locally_with_typed_errors(client):
    with pytest.raises(InvalidInput, match="unknown class 'dragon'"):
        client.generate(_sketch(), "dragon", seed=1)
    with pytest.raises(InvalidInput, match="class id 4 is out of range"):
        client.generate(_sketch(), 4, seed=1)
    with pytest.raises(InvalidInput, match="noise contains NaN"):
        client.generate(_sketch(), 0, noise=np.full(8, np.nan))
    with pytest.raises(InvalidInput, match="noise has 3 values; expected 8"):
        client.generate(_sketch(), 0, noise=np.zeros(3))
    with pytest.raises(InvalidInput, match="not a readable image"):
        client.generate(b"definitely not a png", 0, seed=1)


def test_oversize_message_is_refused_and_server_stays_ready(server):
    """Triton 2.51 has no gRPC message-size flag: a 17.6 MB tensor is refused by shape validation, and the
    client's channel refuses to send more than its 64 MiB limit."""
    huge = np.zeros((1, 4200, 4200), np.uint8)
    with grpcclient.InferenceServerClient(server.grpc_url) as c:
        with pytest.raises(InferenceServerException, match=r"unexpected shape for input 'SKETCH'"):
            c.infer("sketchygan", raw_inputs(huge, np.zeros((1, 1), np.int32), np.zeros((1, 8), np.float32)),
                    client_timeout=30)
        assert c.is_model_ready("sketchygan")
    with SketchClient(server.grpc_url, timeout_s=30) as sc:
        big = np.zeros((1, 5000, 5000), np.uint8)  # 25 MB per image, x3 images = 75 MB > 64 MiB
        sk = grpcclient.InferInput("SKETCH", [3, 5000, 5000], "UINT8")
        sk.set_data_from_numpy(np.repeat(big, 3, 0))
        cid, z = grpcclient.InferInput("CLASS_ID", [3, 1], "INT32"), grpcclient.InferInput("NOISE", [3, 8], "FP32")
        cid.set_data_from_numpy(np.zeros((3, 1), np.int32))
        z.set_data_from_numpy(np.zeros((3, 8), np.float32))
        with pytest.raises(InferenceServerException, match="RESOURCE_EXHAUSTED|larger than max"):
            sc._client.infer("sketchygan", [sk, cid, z], client_timeout=30)  # the client's own channel: its bound
        assert sc.ready()


def test_cli_generate_classes_health_and_corrupt_file(server, tmp_path):
    sk = tmp_path / "s.png"
    Image.fromarray(_sketch(3)).save(sk)
    cli = [sys.executable, "-m", "sketchygan_client.cli", "--url", server.grpc_url]
    r = subprocess.run(cli + ["generate", str(sk), "--class", "star", "--seed", "7", "-o", str(tmp_path / "o.png")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "o.png").size == (32, 32)
    r = subprocess.run(cli + ["classes"], capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["0", "circle", "1", "square", "2", "star", "3", "triangle"]
    r = subprocess.run(cli + ["health"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and '"ready": true' in r.stdout
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    r = subprocess.run(cli + ["generate", str(bad), "--class", "star", "-o", str(tmp_path / "x.png")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "is not a readable image" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(cli + ["generate", str(sk), "--class", "dragon", "-o", str(tmp_path / "x.png")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "unknown class 'dragon'" in r.stderr


def test_restricted_apis_need_the_key_and_http_is_closed(server):
    with grpcclient.InferenceServerClient(server.grpc_url) as c:
        with pytest.raises(InferenceServerException, match="restricted|protocol|not allowed|Unauthenticated|key"):
            c.register_system_shared_memory("x", "/x", 64)
        with pytest.raises(InferenceServerException):
            c.load_model("sketchygan")
        key = server.config.restricted_key
        c.get_inference_statistics("sketchygan",
                                   headers={f"triton-grpc-protocol-{key}": server.config.restricted_value})
    # the server's own sockets: every listener it opened is on loopback, and none of them speaks HTTP/REST
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
    mine = [l for l in out.splitlines() if f"pid={server.proc.pid}," in l]
    assert mine, out
    for line in mine:
        local = line.split()[3]
        assert local.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:")), line
    ports = sorted(int(l.split()[3].rsplit(":", 1)[1]) for l in mine)
    assert ports == sorted([server.config.grpc_port, server.config.metrics_port])


@pytest.mark.slow
def test_killed_server_gives_server_unavailable_within_deadline_and_client_recovers(patient_repo, tmp_path):
    from serving.server import leftover_shm
    repo = patient_repo
    shm_before = set(leftover_shm())
    cfg = ServerConfig(repository=repo, grpc_port=free_port(), metrics_port=free_port())
    srv = TritonServer(cfg, log_path=tmp_path / "a.log").start()
    metrics_registry = __import__("prometheus_client").CollectorRegistry()
    metrics = ClientMetrics(metrics_registry)
    client = SketchClient(srv.grpc_url, timeout_s=5, metrics=metrics)
    try:
        assert client.generate_array(_sketch(), 0, seed=1).shape == (32, 32, 3)
        # deterministic in-flight work: freeze the model processes, then wait until the server holds queued
        # requests (its pending gauge), and only then kill it
        for stub in stubs_of(srv.proc.pid):
            os.kill(stub.pid, signal.SIGSTOP)
        with cf.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(client.generate_batch_array, [_sketch(i)] * 16, [0] * 16) for i in range(8)]
            deadline = time.monotonic() + 30
            while scrape(srv.metrics_url).get("nv_inference_pending_request_count", 0) < 1:
                assert time.monotonic() < deadline, "requests never reached the server's queue"
                time.sleep(0.01)
            srv.proc.kill()  # SIGKILL: no graceful drain
            t0 = time.monotonic()
            outcomes = []
            for f in futures:
                try:
                    f.result(timeout=30)
                    outcomes.append("ok")
                except ServerUnavailable:
                    outcomes.append("unavailable")
        # none could complete (frozen model processes, then no server): every call retried until its 5 s deadline
        assert outcomes == ["unavailable"] * 8
        t0 = time.monotonic()
        with pytest.raises(ServerUnavailable):
            client.generate_array(_sketch(), 0, seed=1)
        # no hang: the retries stop at the call's own deadline (bounded by twice it, whatever the machine's speed)
        assert time.monotonic() - t0 < 2 * client.timeout_s
        srv.stop()
        assert set(leftover_shm()) <= shm_before  # the SIGKILLed server's region was cleaned up
        srv = TritonServer(cfg, log_path=tmp_path / "b.log").start()
        deadline = time.monotonic() + 20  # the channel reconnects on its own backoff (<= 0.5 s) once used
        while not client.ready() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.generate_array(_sketch(), 0, seed=1).shape == (32, 32, 3)  # same client object
        text = __import__("prometheus_client").generate_latest(metrics_registry).decode()
        assert "sketchygan_client_retries_total" in text
        assert re.search(r'sketchygan_client_requests_total\{code="UNAVAILABLE",method="generate",outcome="error"\} '
                         r'[1-9]', text), text
    finally:
        client.close()
        srv.stop()


def test_async_client_gives_the_same_bytes_as_the_sync_client(server, client):
    import asyncio

    from sketchygan_client import AsyncSketchClient

    async def go():
        async with AsyncSketchClient(server.grpc_url, timeout_s=30) as ac:
            info = await ac.info()
            outs = await asyncio.gather(*[ac.generate_array(_sketch(i), i % 4, seed=i) for i in range(6)])
            with pytest.raises(InvalidInput, match="unknown class"):
                await ac.generate(_sketch(), "dragon", seed=1)
            same = (await ac.classes(), await ac.resolution(), await ac.replicas())
            return info, outs, await ac.ready(), same

    info, outs, ready, (classes, resolution, replicas) = asyncio.run(go())
    assert info.class_names == client.classes and ready
    assert (classes, resolution, replicas) == (client.classes, client.resolution, client.replicas())
    for i, out in enumerate(outs):
        assert np.abs(out.astype(np.int16) - client.generate_array(_sketch(i), i % 4, seed=i)).max() <= 1
