"""A bf16 deployment served by a real `python -m serving --precision bf16`: its images within the export gate of
float32's, and the precision named by the health check, the receipt, the served config and Triton's metrics; on a CPU
without native bfloat16 the same command refuses to start, naming the CPU."""
import json
import os
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

from export.fp16_check import psnr
from export.precision_gate import MIN_PSNR_DB
from serving.machine import cpu_model_and_flags
from sketchygan_client import SketchClient
from tests.e2e.conftest import ready_json, serve, stop_serving
from tests.test_precision import NATIVE, _bf16_repo
from triton_repo.runtimes import ov_batches, run_ov

pytestmark = pytest.mark.slow


def _sketches(n, seed):
    rng = np.random.default_rng(seed)
    sk = np.where(rng.random((n, 32, 32)) < 0.08, 0, 255).astype(np.uint8)
    return sk, rng.integers(0, 4, n), rng.standard_normal((n, 8)).astype(np.float32)


@pytest.mark.skipif(not NATIVE, reason="this CPU has no native bfloat16 (AVX-512-BF16 / AMX): a bf16 deployment is "
                                       "refused here (the next test)")
def test_a_bf16_deployment_serves_within_the_gate_and_says_so_everywhere(exported, tmp_path):
    repo = _bf16_repo(exported, tmp_path)
    core = str(sorted(os.sched_getaffinity(0))[0])
    proc, lines, (g, m, h) = serve(repo, tmp_path, "--precision", "bf16", "--cpus", core,
                                   "--calibration-cache", str(tmp_path / "plan.json"))
    try:
        [line] = [x for x in lines if "calibration (measured" in x]
        assert "-> openvino bf16 1x1" in line, line
        code, health = ready_json(h)
        assert code == 200 and health["serving"]["precision"] == "bf16"
        assert {c["precision"] for c in health["serving"]["costs"]} == {"bf16"}  # measured in what it serves
        sk, cls, z = _sketches(6, 11)
        with SketchClient(f"127.0.0.1:{g}") as client:
            assert client.info.precision == "bf16"
            got = client.generate_batch_array(list(sk), list(cls), noises=list(z))
            _, receipt = client.generate_explained(sk[0], int(cls[0]), seed=3)
        assert receipt.precision == "bf16" and receipt.headers()["x-precision"] == "bf16"
        onnx = repo / "sketchygan" / "1" / "model.onnx"
        x = (sk, cls.astype(np.int32)[:, None], z)
        f32 = run_ov(ov_batches(onnx, 1, precision="f32"), *x)
        bf16 = run_ov(ov_batches(onnx, 1, precision="bf16"), *x)
        assert psnr(got, f32) >= MIN_PSNR_DB
        if not np.array_equal(bf16, f32):  # the served images are bf16's, not f32's
            assert not np.array_equal(got, f32)
        r = subprocess.run([sys.executable, "-m", "sketchygan_client.cli", "--url", f"127.0.0.1:{g}", "health"],
                           capture_output=True, text=True, timeout=60)
        shown = json.loads(r.stdout)
        assert r.returncode == 0, r.stderr
        assert shown["precision"] == "bf16" and shown["serving"]["precision"] == "bf16"
        assert [rep["precision"] for rep in shown["replicas"]] == ["bf16"]
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{m}/metrics", timeout=5).read().decode()
        info = [x for x in metrics.splitlines() if x.startswith("sketchygan_deployment_info{")]
        assert info and all('precision="bf16"' in x and 'runtime="openvino"' in x and x.endswith(" 1") for x in info)
    finally:
        stop_serving(proc, lines)


@pytest.mark.skipif(NATIVE, reason="this CPU computes bfloat16 natively: the refusal applies to CPUs without it")
def test_a_bf16_deployment_refuses_to_start_on_a_cpu_without_native_bfloat16(exported, tmp_path):
    repo = _bf16_repo(exported, tmp_path)
    r = subprocess.run([sys.executable, "-m", "serving", "--repository", str(repo), "--precision", "bf16",
                        "--health-port", "0"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 1 and "precision bf16 refused: this CPU" in r.stderr, r.stderr
    assert cpu_model_and_flags()[0] in r.stderr and "avx512_bf16" in r.stderr
