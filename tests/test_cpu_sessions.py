"""triton_repo/cpu_sessions.py: OpenVINO compiled per power-of-two static batch size, on the exported tiny ONNX —
the pieces a batch runs as, the sizes compiled ahead, and pixels that do not depend on the batch a row lands in."""
import numpy as np
import pytest

from triton_repo.config_reader import contract_from_config, parse_config
from triton_repo.cpu_sessions import OpenVinoBatches, pieces
from triton_repo.runtimes import ort_session, ov_compiled, random_inputs, run_ort, run_ov


@pytest.mark.parametrize("n, want", [(1, [1]), (2, [2]), (7, [4, 2, 1]), (12, [8, 4]), (17, [16, 1])])
def test_a_batch_runs_as_powers_of_two_largest_first(n, want):
    assert pieces(n) == want and sum(pieces(n)) == n


def test_an_empty_batch_is_refused():
    with pytest.raises(ValueError, match="at least one row, got 0"):
        pieces(0)


def _inputs(repo, n, seed):
    contract = contract_from_config(parse_config((repo / "sketchygan" / "config.pbtxt").read_text()))
    return random_inputs(n, contract.resolution, contract.noise_dim, len(contract.class_names), seed)


def test_prepare_compiles_every_piece_up_to_the_largest_batch(exported):
    _, repo, _ = exported
    model = OpenVinoBatches(repo / "sketchygan" / "1" / "model.onnx", "f32", 1)
    model.prepare(7)
    assert sorted(model._compiled) == [1, 2, 4]
    model.prepare(17)
    assert sorted(model._compiled) == [1, 2, 4, 8, 16]


@pytest.mark.parametrize("precision", ["f32", "bf16"])
def test_a_row_gives_the_same_bytes_alone_and_in_any_batch(exported, precision):
    _, repo, _ = exported
    model = OpenVinoBatches(repo / "sketchygan" / "1" / "model.onnx", precision, 1)
    sk, cid, z = _inputs(repo, 13, 5)
    batched = run_ov(model, sk, cid, z)
    assert batched.shape[0] == 13 and batched.dtype == np.uint8
    for n in (1, 3, 6):
        assert np.array_equal(run_ov(model, sk[:n], cid[:n], z[:n]), batched[:n])
    alone = np.concatenate([run_ov(model, sk[i:i + 1], cid[i:i + 1], z[i:i + 1]) for i in range(13)])
    assert np.array_equal(alone, batched)


def test_static_pieces_agree_with_the_dynamic_graph_and_onnxruntime_in_float32(exported):
    _, repo, _ = exported
    onnx = repo / "sketchygan" / "1" / "model.onnx"
    sk, cid, z = _inputs(repo, 11, 9)
    got = run_ov(OpenVinoBatches(onnx, "f32", 1), sk, cid, z).astype(int)
    assert np.abs(got - run_ov(ov_compiled(onnx, 1), sk, cid, z).astype(int)).max() <= 1
    assert np.abs(got - run_ort(ort_session(onnx, 1), sk, cid, z).astype(int)).max() <= 1
