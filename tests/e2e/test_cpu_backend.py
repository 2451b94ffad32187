"""The CPU python-backend model.py under a real tritonserver: same bytes as ONNX Runtime, per-request errors."""
import threading

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from loadtest.callers import raw_inputs
from triton_repo.runtimes import ort_session, random_inputs, run_ort


def _inputs(n, seed):
    return random_inputs(n, 32, 8, 4, seed)


def test_server_returns_the_same_bytes_as_onnxruntime_in_process(server, exported):
    _, repo, _ = exported
    sk, cid, z = _inputs(3, 0)
    with grpcclient.InferenceServerClient(server.grpc_url) as c:
        out = c.infer("sketchygan", raw_inputs(sk, cid, z), client_timeout=30).as_numpy("IMAGE")
    ref = run_ort(ort_session(repo / "sketchygan" / "1" / "model.onnx"), sk, cid, z)
    assert out.dtype == np.uint8 and out.shape == (3, 32, 32, 3)
    assert np.array_equal(out, ref)


def test_one_bad_request_in_a_dynamic_batch_fails_alone(patient_server):
    """Concurrent requests, one with an out-of-range class and one with NaN noise: only those two fail. On the
    patient server (no queue timeout): on a slowed core the default 500 ms timeout refused some of the 12 (found by
    the slowed CI pass), which is load shedding, not a bad request's fault."""
    server = patient_server
    results, errors = {}, {}
    n = 12
    reqs = []
    for i in range(n):
        sk, cid, z = _inputs(1, 100 + i)
        if i == 3:
            cid[0, 0] = 4
        if i == 7:
            z[0, 0] = np.nan
        reqs.append((sk, cid, z))
    done = threading.Event()
    lock = threading.Lock()

    def cb(i):
        def inner(result, error):
            with lock:
                if error is not None:
                    errors[i] = error
                else:
                    results[i] = result.as_numpy("IMAGE")
                if len(results) + len(errors) == n:
                    done.set()
        return inner

    with grpcclient.InferenceServerClient(server.grpc_url) as c:
        for i, r in enumerate(reqs):
            c.async_infer("sketchygan", raw_inputs(*r), callback=cb(i), client_timeout=60)
        assert done.wait(60)
        assert set(errors) == {3, 7}
        assert "CLASS_ID 4 is out of range: expected 0 <= CLASS_ID < 4" in str(errors[3])
        assert "StatusCode.INVALID_ARGUMENT" in str(errors[3])
        assert "NOISE contains NaN or Inf" in str(errors[7])
        assert len(results) == n - 2
        alone = c.infer("sketchygan", raw_inputs(*reqs[0]), client_timeout=30).as_numpy("IMAGE")
        assert np.abs(alone.astype(np.int16) - results[0]).max() <= 1
        assert c.is_server_live() and c.is_model_ready("sketchygan")


def test_wrong_dtype_is_rejected_and_server_stays_ready(server):
    sk, cid, z = _inputs(1, 5)
    ins = raw_inputs(sk, cid, z)
    bad = grpcclient.InferInput("NOISE", list(z.shape), "FP64")
    bad.set_data_from_numpy(z.astype(np.float64))
    with grpcclient.InferenceServerClient(server.grpc_url) as c:
        with pytest.raises(InferenceServerException, match="NOISE"):
            c.infer("sketchygan", [ins[0], ins[1], bad], client_timeout=30)
        assert c.is_model_ready("sketchygan")
