"""The CPU model folder with OpenVINO as its runtime, served by a real tritonserver: same bytes as OpenVINO in
process, close to ONNX Runtime, and batch invariant under dynamic batching."""
import concurrent.futures as cf

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from export.errors import ExportError
from export.openvino_check import openvino_check
from loadtest.callers import raw_inputs
from serving.process import free_port
from serving.server import ServerConfig, TritonServer
from triton_repo.config_reader import contract_from_config, parse_config
from triton_repo.contract import NOISE_LIMIT
from triton_repo.folders import write_model_folder
from triton_repo.runtimes import ov_batches, ov_compiled, ov_default_precision, random_inputs, run_ov
from triton_repo.serving_config import Limits, ServingConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ov_server(exported, tmp_path_factory):
    _, repo, _ = exported
    contract = contract_from_config(parse_config((repo / "sketchygan" / "config.pbtxt").read_text()))
    out = tmp_path_factory.mktemp("openvino")
    onnx = repo / "sketchygan" / "1" / "model.onnx"
    write_model_folder(out, "cpu", contract, ServingConfig(max_batch_size=16, limits=Limits("openvino")), onnx)
    cfg = ServerConfig(repository=out, grpc_port=free_port(), metrics_port=free_port())
    with TritonServer(cfg, log_path=out / "server.log") as srv:
        yield srv, onnx


def test_served_openvino_gives_the_bytes_of_openvino_in_process(ov_server):
    srv, onnx = ov_server
    sk, cid, z = random_inputs(4, 32, 8, 4, 3)
    with grpcclient.InferenceServerClient(srv.grpc_url) as c:
        got = c.infer("sketchygan", raw_inputs(sk, cid, z), client_timeout=30).as_numpy("IMAGE")
    assert np.array_equal(got, run_ov(ov_batches(onnx, 1), sk, cid, z))  # as model.py runs it: static pieces


def test_openvino_is_batch_invariant_under_dynamic_batching(ov_server):
    srv, _ = ov_server
    sk, cid, z = random_inputs(12, 32, 8, 4, 5)
    with grpcclient.InferenceServerClient(srv.grpc_url) as c:
        alone = c.infer("sketchygan", raw_inputs(sk[:1], cid[:1], z[:1]), client_timeout=30).as_numpy("IMAGE")
        with cf.ThreadPoolExecutor(6) as pool:
            outs = list(pool.map(lambda i: c.infer("sketchygan", raw_inputs(sk[i:i + 1], cid[i:i + 1], z[i:i + 1]),
                                                   client_timeout=30).as_numpy("IMAGE"), range(12)))
    assert np.array_equal(outs[0], alone)


def _sketches(n, seed):
    """Sparse strokes on white, like real sketches (uniform noise images are far outside what the model saw)."""
    rng = np.random.default_rng(seed)
    sk = np.where(rng.random((n, 32, 32)) < 0.08, 0, 255).astype(np.uint8)
    return sk, rng.integers(0, 4, (n, 1)).astype(np.int32), rng.standard_normal((n, 8)).astype(np.float32)


def test_export_gate_reports_psnr_and_batch_invariance_and_refuses_beyond_its_bounds(exported, monkeypatch):
    import export.openvino_check as oc
    _, repo, _ = exported
    onnx = repo / "sketchygan" / "1" / "model.onnx"
    monkeypatch.setattr(oc, "MIN_PSNR_DB", 0.0)  # report whatever the tiny test model gives
    monkeypatch.setattr(oc, "MAX_LEVELS", 255)
    rep = openvino_check(onnx, *_sketches(6, 7)).as_dict()
    assert rep["batch_invariant"] and rep["n_samples"] == 6 and 0 < rep["psnr_db_vs_onnxruntime"]
    assert rep["precision"] == "f32"  # what the CPU folder's model.py runs, on every CPU
    # the plugin's default (bf16 where native) is what Triton's OpenVINO backend runs
    assert openvino_check(onnx, *_sketches(6, 7), precision=None).precision == ov_default_precision()
    if rep["psnr_db_vs_onnxruntime"] != float("inf"):  # identical bytes (PSNR inf) can fail no PSNR bound
        monkeypatch.setattr(oc, "MIN_PSNR_DB", rep["psnr_db_vs_onnxruntime"] + 1)  # just above what it measures
        with pytest.raises(ExportError, match="OpenVINO check failed"):
            openvino_check(onnx, *_sketches(6, 7))
        monkeypatch.setattr(oc, "MIN_PSNR_DB", 0.0)
    monkeypatch.setattr(oc, "MAX_LEVELS", rep["max_abs_diff_levels"] - 1)  # just below what it measures
    with pytest.raises(ExportError, match="OpenVINO check failed"):
        openvino_check(onnx, *_sketches(6, 7))


def test_openvino_keeps_the_graphs_input_sanitising(exported):
    """The native OpenVINO backend has no model.py to validate requests: the graph's own clamping of CLASS_ID and
    of non-finite / huge NOISE must hold under OpenVINO too (as test_export checks for ONNX Runtime)."""
    _, repo, _ = exported
    sk, _, z = _sketches(1, 11)
    for precision in ("f32", None):  # pinned, and the plugin's default (bfloat16 where native: the backend's)
        compiled = ov_compiled(repo / "sketchygan" / "1" / "model.onnx", 1, precision=precision)

        def img(c, noise):
            return run_ov(compiled, sk, np.array([[c]], np.int32), noise.astype(np.float32))
        assert np.array_equal(img(-7, z), img(0, z)) and np.array_equal(img(2**31 - 1, z), img(3, z))
        noisy, ref = z.copy(), z.copy()
        noisy[0, 3], ref[0, 3] = np.nan, 0.0
        assert np.array_equal(img(1, noisy), img(1, ref))
        noisy[0, 3], ref[0, 3] = 1e30, NOISE_LIMIT
        assert np.array_equal(img(1, noisy), img(1, ref))
