"""Property-based fuzzing of the gRPC inference API: malformed requests interleaved with valid ones.

Every malformed request must be refused with INVALID_ARGUMENT (never computed, never a crash), every valid one
must succeed, and the server must stay ready. Derandomized, so CI runs the same 300+ cases every time.
"""
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritonclient.utils import InferenceServerException

from loadtest.callers import raw_inputs

S, Z, CLASSES, MAX_BATCH = 32, 8, 4, 16  # the tiny test export
NUMERIC = ("UINT8", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64")
NP = {"UINT8": np.uint8, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
      "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}
EXPECTED = {"SKETCH": "UINT8", "CLASS_ID": "INT32", "NOISE": "FP32"}
STATS = {"malformed": 0, "valid": 0}


def _valid(b: int, seed: int):
    rng = np.random.default_rng(seed)
    sk = np.where(rng.random((b, S, S)) < 0.1, 0, 255).astype(np.uint8)
    cid = rng.integers(0, CLASSES, (b, 1)).astype(np.int32)
    z = np.clip(rng.standard_normal((b, Z)), -4, 4).astype(np.float32)
    return sk, cid, z


def _tensor(name: str, arr: np.ndarray, dtype: str | None = None):
    t = grpcclient.InferInput(name, list(arr.shape), dtype or EXPECTED[name])
    t.set_data_from_numpy(arr)
    return t


@st.composite
def malformed(draw):
    """(kind, list of InferInput) for one request that the server must refuse."""
    b = draw(st.integers(1, 4))
    sk, cid, z = _valid(b, draw(st.integers(0, 2**32 - 1)))
    row = draw(st.integers(0, b - 1))
    kind = draw(st.sampled_from(["class", "noise", "dtype", "shape", "batch0", "batch_big", "batch_mismatch",
                                 "missing", "extra", "bytes"]))
    if kind == "class":
        cid[row, 0] = draw(st.one_of(st.integers(-2**31, -1), st.integers(CLASSES, 2**31 - 1)))
        return kind, raw_inputs(sk, cid, z)
    if kind == "noise":
        z[row, draw(st.integers(0, Z - 1))] = draw(st.one_of(
            st.sampled_from([np.nan, np.inf, -np.inf]),
            st.floats(16.001, 3e38, allow_nan=False, allow_infinity=False),
            st.floats(-3e38, -16.001, allow_nan=False, allow_infinity=False)))
        return kind, raw_inputs(sk, cid, z)
    if kind == "dtype":
        name = draw(st.sampled_from(list(EXPECTED)))
        dtype = draw(st.sampled_from([d for d in NUMERIC if d != EXPECTED[name]]))
        arrays = {"SKETCH": sk, "CLASS_ID": cid, "NOISE": z}
        return kind, [_tensor(n, a.astype(NP[dtype]) if n == name else a, dtype if n == name else None)
                      for n, a in arrays.items()]
    if kind == "shape":
        which = draw(st.sampled_from(["SKETCH", "CLASS_ID", "NOISE"]))
        if which == "SKETCH":
            h, w = draw(st.tuples(st.integers(1, 64), st.integers(1, 64)).filter(lambda hw: hw != (S, S)))
            sk = np.full((b, h, w), 255, np.uint8)
        elif which == "CLASS_ID":
            cid = np.zeros((b, draw(st.integers(2, 4))), np.int32)
        else:
            z = np.zeros((b, draw(st.integers(1, 32).filter(lambda k: k != Z))), np.float32)
        return kind, raw_inputs(sk, cid, z)
    if kind == "batch0":
        return kind, raw_inputs(sk[:0], cid[:0], z[:0])
    if kind == "batch_big":
        n = draw(st.integers(MAX_BATCH + 1, 40))
        return kind, raw_inputs(*_valid(n, 1))
    if kind == "batch_mismatch":
        other = draw(st.integers(1, 5).filter(lambda k: k != b))
        return kind, raw_inputs(sk, np.zeros((other, 1), np.int32), z)
    if kind == "missing":
        drop = draw(st.integers(0, 2))
        return kind, [t for i, t in enumerate(raw_inputs(sk, cid, z)) if i != drop]
    if kind == "extra":
        bogus = grpcclient.InferInput("BOGUS", [b, 1], "FP32")
        bogus.set_data_from_numpy(np.zeros((b, 1), np.float32))
        return kind, raw_inputs(sk, cid, z) + [bogus]
    # bytes: the declared shape and the bytes sent disagree (data set for another element count, then reshaped)
    arrays = {"SKETCH": sk, "CLASS_ID": cid, "NOISE": z}
    name = draw(st.sampled_from(list(arrays)))
    a = arrays[name]
    n = a.size
    m = draw(st.integers(1, n - 1)) if n > 1 and draw(st.booleans()) else n + draw(st.integers(1, 16))
    wrong = grpcclient.InferInput(name, [m], EXPECTED[name])
    wrong.set_data_from_numpy(np.resize(a.reshape(-1), m).astype(a.dtype))
    wrong.set_shape(list(a.shape))
    return kind, [wrong if n_ == name else _tensor(n_, arr) for n_, arr in arrays.items()]


@pytest.fixture(scope="module")
def grpc(server):
    with grpcclient.InferenceServerClient(server.grpc_url) as c:
        yield c


@settings(max_examples=320, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(bad=malformed(), valid_batch=st.integers(1, 4), valid_seed=st.integers(0, 2**32 - 1))
def test_malformed_requests_are_refused_and_valid_ones_interleaved_still_succeed(grpc, bad, valid_batch,
                                                                                valid_seed):
    kind, ins = bad
    with pytest.raises(InferenceServerException) as err:
        grpc.infer("sketchygan", ins, client_timeout=30)
    assert "INVALID_ARGUMENT" in str(err.value.status()), (kind, err.value.status(), err.value.message())
    STATS["malformed"] += 1
    sk, cid, z = _valid(valid_batch, valid_seed)
    out = grpc.infer("sketchygan", raw_inputs(sk, cid, z), client_timeout=30).as_numpy("IMAGE")
    assert out.shape == (valid_batch, S, S, 3) and out.dtype == np.uint8
    STATS["valid"] += 1


def test_after_the_fuzzing_the_server_is_ready_and_every_case_ran(grpc):
    assert STATS["malformed"] >= 300 and STATS["valid"] == STATS["malformed"], STATS
    assert grpc.is_server_live() and grpc.is_server_ready() and grpc.is_model_ready("sketchygan")


def test_empty_batch_is_refused_before_the_model_and_the_client_says_what_is_expected(grpc, server):
    """Triton 2.51 refuses batch 0 itself (as a byte-size mismatch) before model.py could word it better; the
    project's client refuses it locally with a message that says what is expected."""
    from sketchygan_client import InvalidInput, SketchClient
    sk, cid, z = _valid(1, 0)
    with pytest.raises(InferenceServerException) as err:
        grpc.infer("sketchygan", raw_inputs(sk[:0], cid[:0], z[:0]), client_timeout=30)
    assert "INVALID_ARGUMENT" in str(err.value.status()) and "byte size" in err.value.message()
    with SketchClient(server.grpc_url) as c:
        with pytest.raises(InvalidInput, match="no sketches given"):
            c.generate_batch_array([], [])
