"""The class-confidence scorer: trained on the training split only, saved and loaded as a scorer, exported to ONNX
that matches PyTorch, refused when it does not fit the generator, and the statistics that relate it to the judge."""
import json

import numpy as np
import pytest
import torch

from export.scorer_export import ScorerGraph, export_scorer, scorer_for, scorer_parity
from training import checkpoint as ckpt
from training.scorer import auc, load_scorer, relation
from triton_repo.config_reader import parse_config
from triton_repo.contract import CLASS_ID, CONFIDENCE, IMAGE, PROBS, Contract, ScorerContract
from triton_repo.runtimes import ort_session


def test_the_scorer_learns_from_training_images_only_and_says_so(tiny_scorer, tiny_data):
    model, meta = load_scorer(tiny_scorer)
    assert meta["kind"] == "scorer" and meta["class_names"] == list(tiny_data.class_names)
    assert meta["n_train"] == len(tiny_data.split("train")) and meta["n_validation"] == len(tiny_data.split("val"))
    assert 0 <= meta["top1_real_validation"] <= 1 and 0 <= meta["top1_real_train"] <= 1
    with torch.no_grad():
        p = torch.softmax(model(torch.zeros(2, 3, tiny_data.resolution, tiny_data.resolution)), 1)
    assert torch.allclose(p.sum(1), torch.ones(2))


def test_a_generator_checkpoint_is_not_a_scorer(tiny_checkpoint):
    with pytest.raises(ckpt.CheckpointError, match="not a scorer checkpoint"):
        load_scorer(tiny_checkpoint)


def test_exported_scorer_matches_pytorch_and_its_contract(exported, tiny_scorer):
    report, repo, _ = exported
    assert report["scorer"]["onnx_parity"]["max_abs_diff"] <= 1e-4
    folder = repo / "sketchygan_score"
    cfg = parse_config((folder / "config.pbtxt").read_text())
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    assert params["scorer_sha256"] == ckpt.sha256_file(tiny_scorer)
    gen = parse_config((repo / "sketchygan" / "config.pbtxt").read_text())
    assert json.loads(params["class_names"]) == json.loads(gen.parameters["class_names"].string_value)
    assert cfg.max_batch_size == gen.max_batch_size  # a generated batch is scored in one request
    model, _ = load_scorer(tiny_scorer)
    s, c = int(params["resolution"]), len(json.loads(params["class_names"]))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (5, s, s, 3), dtype=np.uint8)
    cid = np.array([[0], [1], [c - 1], [-3], [c + 9]], np.int32)  # out of range: clamped in the graph
    conf, probs = ort_session(folder / "1" / "model.onnx").run([CONFIDENCE, PROBS], {IMAGE: image, CLASS_ID: cid})
    with torch.no_grad():
        want = torch.softmax(model(torch.from_numpy(image).permute(0, 3, 1, 2).float() / 127.5 - 1), 1).numpy()
    np.testing.assert_allclose(probs, want, atol=1e-5)
    np.testing.assert_allclose(conf[:, 0], want[np.arange(5), np.clip(cid[:, 0], 0, c - 1)], atol=1e-5)


def test_every_repository_serves_the_same_scorer_on_its_own_backend(exported):
    """The container targets get the scorer too, on a native backend (no python stub): the same ONNX bytes and
    tensors as the CPU folder, onnxruntime on the GPU beside tensorrt / onnxruntime-trt."""
    from tritonclient.grpc import model_config_pb2 as mc
    report, repo, gpu = exported
    cpu = repo / "sketchygan_score"
    cpu_cfg = parse_config((cpu / "config.pbtxt").read_text())
    io = lambda c: [(t.name, t.data_type, tuple(t.dims)) for t in list(c.input) + list(c.output)]  # noqa: E731
    contract = lambda c: {k: c.parameters[k].string_value for k in ("resolution", "class_names", "scorer_sha256")}  # noqa: E731
    from export.pipeline import GPU_REPOS
    for target in ("tensorrt", "onnxruntime-trt"):
        folder = gpu / GPU_REPOS[target] / "sketchygan_score"
        assert report["folders"][f"scorer-{target}"] == str(folder)
        cfg = parse_config((folder / "config.pbtxt").read_text())
        assert cfg.platform == "onnxruntime_onnx" and not cfg.backend
        assert [(g.count, g.kind) for g in cfg.instance_group] == [(1, mc.ModelInstanceGroup.KIND_GPU)]
        assert io(cfg) == io(cpu_cfg) and contract(cfg) == contract(cpu_cfg)
        assert cfg.max_batch_size == cpu_cfg.max_batch_size and cfg.response_cache.enable
        assert (folder / "1" / "model.onnx").read_bytes() == (cpu / "1" / "model.onnx").read_bytes()
        assert not (folder / "1" / "model.py").exists()


def test_the_openvino_scorer_folder_gives_onnxruntimes_confidences(exported, tmp_path):
    """Triton's OpenVINO backend is not in the pip tritonserver used here: its folder is checked by parsing, and
    OpenVINO itself runs the ONNX it reads, out-of-range class ids included (clamped, not refused, there)."""
    from tritonclient.grpc import model_config_pb2 as mc

    from triton_repo.folders import write_scorer_folder
    from triton_repo.runtimes import ov_compiled
    _, repo, _ = exported
    cpu = repo / "sketchygan_score"
    params = {k: v.string_value for k, v in parse_config((cpu / "config.pbtxt").read_text()).parameters.items()}
    s, c = int(params["resolution"]), len(json.loads(params["class_names"]))
    sc = ScorerContract(s, tuple(json.loads(params["class_names"])), params["scorer_sha256"])
    folder = write_scorer_folder(tmp_path, sc, cpu / "1" / "model.onnx", 16, target="openvino")
    cfg = parse_config((folder / "config.pbtxt").read_text())
    assert cfg.backend == "openvino" and cfg.default_model_filename == "model.onnx"
    assert [(g.count, g.kind) for g in cfg.instance_group] == [(1, mc.ModelInstanceGroup.KIND_CPU)]
    assert cfg.parameters["NUM_STREAMS"].string_value == "1" and not (folder / "1" / "model.py").exists()
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (6, s, s, 3), dtype=np.uint8)
    cid = np.array([[0], [1], [c - 1], [-3], [c + 9], [2]], np.int32)
    want = ort_session(cpu / "1" / "model.onnx").run([CONFIDENCE, PROBS], {IMAGE: image, CLASS_ID: cid})
    # float32 (what this project's runners pin) matches onnxruntime closely; Triton's OpenVINO backend runs the
    # plugin's default precision, bfloat16 on a CPU that has it natively, so there the bound is bfloat16's
    for precision, atol in (("f32", 1e-4), (None, 0.02)):
        compiled = ov_compiled(folder / "1" / "model.onnx", threads=1, precision=precision)
        got = compiled({IMAGE: image, CLASS_ID: cid})
        np.testing.assert_allclose(got[compiled.output(CONFIDENCE)], want[0], atol=atol, err_msg=str(precision))
        np.testing.assert_allclose(got[compiled.output(PROBS)], want[1], atol=atol, err_msg=str(precision))


def test_exporting_without_a_scorer_removes_an_earlier_ones_folder(exported, tiny_checkpoint, tmp_path, capsys):
    """A repository exported with `--scorer none` must not keep serving a scorer an earlier export left there."""
    import shutil

    from export.pipeline import run_export
    from triton_repo.serving_config import Limits, ServingConfig
    _, repo, _ = exported
    out = tmp_path / "repo"
    shutil.copytree(repo / "sketchygan_score", out / "sketchygan_score")
    run_export(tiny_checkpoint, out, tmp_path / "gpu", ["cpu"], ServingConfig(limits=Limits("onnxruntime")), "tiny",
               35.0, None)
    assert (out / "sketchygan").is_dir() and not (out / "sketchygan_score").exists()
    assert "removed the earlier export's scorer" in capsys.readouterr().err


def test_a_scorer_of_other_classes_is_refused(tiny_scorer):
    _, meta = load_scorer(tiny_scorer)
    other = Contract(meta["resolution"], tuple(reversed(meta["class_names"])), "x" * 64, ())
    with pytest.raises(ckpt.CheckpointError, match="does not fit the generator"):
        scorer_for(tiny_scorer, other)
    bigger = Contract(2 * meta["resolution"], tuple(meta["class_names"]), "x" * 64, ())
    with pytest.raises(ckpt.CheckpointError, match="does not fit"):
        scorer_for(tiny_scorer, bigger)


def test_parity_check_fails_on_a_graph_that_differs(tiny_scorer, tmp_path):
    """The check can fail: an ONNX file of another scorer is caught."""
    from export.errors import ExportError
    model, meta = load_scorer(tiny_scorer)
    contract = ScorerContract(meta["resolution"], tuple(meta["class_names"]), "")
    export_scorer(model, contract, tmp_path / "s.onnx")
    assert scorer_parity(model, contract, tmp_path / "s.onnx")["max_abs_diff"] <= 1e-4
    with torch.no_grad():
        model.head.bias += 3.0 * torch.arange(len(meta["class_names"]), dtype=torch.float32)
    with pytest.raises(ExportError, match="differs from PyTorch"):
        scorer_parity(model, contract, tmp_path / "s.onnx")
    assert isinstance(ScorerGraph(model, 2), torch.nn.Module)


def test_auc_is_the_chance_a_right_image_outscores_a_wrong_one():
    rng = np.random.default_rng(0)
    scores, right = rng.random(60), rng.random(60) < 0.4
    brute = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a in scores[right] for b in scores[~right]])
    assert auc(scores, right) == pytest.approx(brute)
    assert auc(np.array([0.9, 0.8, 0.1]), np.array([True, True, False])) == 1.0
    assert auc(np.array([0.5, 0.5]), np.array([True, False])) == 0.5
    assert auc(np.array([0.5, 0.7]), np.array([True, True])) is None


def test_relation_reports_the_judge_by_confidence_and_the_best_scored_seed():
    # 2 seeds x 4 sketches of 2 classes: the judge is right exactly where the score is high
    conf = np.array([[0.9, 0.2, 0.8, 0.1], [0.3, 0.7, 0.2, 0.6]])
    right = conf > 0.5
    rep = relation(conf, right, np.array([0, 0, 1, 1]), ["a", "b"])
    assert rep["images"] == 8 and rep["judge_top1"] == 0.5
    assert rep["auc_confidence_for_judge_right"] == 1.0
    assert rep["judge_top1_of_top_scored_seed"] == 1.0 and rep["judge_top1_of_lowest_scored_seed"] == 0.0
    assert [b["images"] for b in rep["by_confidence"]] == [3, 1, 2, 2]
    assert [b["judge_top1"] for b in rep["by_confidence"]] == [0.0, 0.0, 1.0, 1.0]
    assert rep["per_class"]["a"] == {"mean_confidence": 0.525, "judge_top1": 0.5}
    assert rep["pearson_r_per_class"] is None  # two classes: no correlation reported
