"""The learned 2x upsampler: it starts as bicubic, learns detail bicubic lacks, round-trips through safetensors, and
exported inside the generator's graph it answers 2x images that the config, the scorer and the TensorRT script
agree on."""
import json

import numpy as np
import pytest
import torch

from export.onnx_export import onnx_io
from training import checkpoint as ckpt
from training.upsampler import Upsampler, UpsamplerConfig, bicubic, load_upsampler
from training.upsampler_train import UpsamplerTrainConfig, load_pairs, psnr
from triton_repo.config_reader import contract_from_config, parse_config
from triton_repo.contract import IMAGE, Contract
from triton_repo.runtimes import ort_session, random_inputs, run_ort


def test_a_new_upsampler_is_bicubic_and_doubles_the_side():
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    y = Upsampler(UpsamplerConfig(width=4, depth=1))(x)
    assert y.shape == (3, 3, 32, 32)
    assert torch.equal(y, bicubic(x, 2))


@pytest.mark.parametrize("field,value", [("width", 0), ("depth", 0), ("scale", 1)])
def test_a_bad_upsampler_setting_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"UpsamplerConfig\.{field} must be at least .* got {value}"):
        UpsamplerConfig(**{field: value})


@pytest.mark.parametrize("field,value", [("steps", 0), ("lr", -1.0), ("input_noise", -0.1)])
def test_a_bad_training_setting_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"UpsamplerTrainConfig\.{field} must .* got {value}"):
        UpsamplerTrainConfig(**{field: value})


def test_the_trained_upsampler_beats_bicubic_on_the_images_it_learned(tiny_upsampler, sketchy_root):
    model, meta = load_upsampler(tiny_upsampler)
    pairs = load_pairs(str(sketchy_root), 32, 2)
    train = torch.from_numpy(np.flatnonzero(~pairs.val))
    lo, hi = pairs.low[train], pairs.high[train]
    with torch.no_grad():
        learned, base = model(lo), bicubic(lo, 2)
    # the fixture's fine texture is mostly noise: a small gain, which a residual left at zero (bicubic) never makes
    assert psnr(learned, hi) > psnr(base, hi) + 0.05
    assert meta["kind"] == "upsampler" and meta["train"]["steps"] == 60


def test_a_generator_checkpoint_is_not_an_upsampler(tiny_checkpoint):
    with pytest.raises(ckpt.CheckpointError, match="not an upsampler"):
        load_upsampler(tiny_checkpoint)


def test_the_exported_graph_answers_twice_the_side_and_publishes_it(upscaled, tiny_upsampler):
    report, repo = upscaled
    onnx_file = repo / "sketchygan" / "1" / "model.onnx"
    assert onnx_io(onnx_file)[IMAGE] == ("uint8", (-1, 64, 64, 3))
    assert all(p["max_abs_diff_levels"] <= 2 for p in report["onnx_parity"].values())
    cfg = parse_config((repo / "sketchygan" / "config.pbtxt").read_text())
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    assert (params["resolution"], params["image_resolution"]) == ("32", "64")
    assert params["upsampler_sha256"] == ckpt.sha256_file(tiny_upsampler) == report["upsampler"]["sha256"]
    contract = contract_from_config(cfg)
    assert (contract.resolution, contract.image_resolution, contract.upscale) == (32, 64, 2)
    out = run_ort(ort_session(onnx_file), *random_inputs(5, 32, 8, 4, np.random.default_rng(0)))
    assert out.shape == (5, 64, 64, 3) and out.dtype == np.uint8
    script = (repo.parent / "gpu" / "tensorrt" / "sketchygan" / "build_engine.sh").read_text()
    assert "SKETCH:16x32x32" in script


def test_the_scorer_takes_the_upsampled_image_and_averages_it_down(upscaled, tiny_scorer):
    report, repo = upscaled
    cfg = parse_config((repo / "sketchygan_score" / "config.pbtxt").read_text())
    image = [t for t in cfg.input if t.name == IMAGE][0]
    assert list(image.dims) == [64, 64, 3]
    # the same picture at 32 px or repeated 2x2 to 64 px is the same evidence: equal confidences
    from training.scorer import load_scorer
    model, _ = load_scorer(tiny_scorer)
    from export.scorer_export import ScorerGraph
    small = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8))
    big = small.repeat_interleave(2, 1).repeat_interleave(2, 2)
    cid = torch.zeros(4, 1, dtype=torch.int32)
    with torch.no_grad():
        a = ScorerGraph(model, 4)(small, cid)[1]
    sess = ort_session(repo / "sketchygan_score" / "1" / "model.onnx")
    b = sess.run(["PROBS"], {"IMAGE": big.numpy(), "CLASS_ID": cid.numpy()})[0]
    assert np.abs(a.numpy() - b).max() < 1e-4
    assert report["scorer"]["onnx_parity"]["max_abs_diff"] <= 1e-4


def test_a_contract_refuses_an_upscale_below_one():
    with pytest.raises(ValueError, match="Contract.upscale must be at least 1, got 0"):
        Contract(32, 8, ("a",), "x", (), 0)
    assert json.loads(json.dumps(Contract(32, 8, ("a",), "x").image_resolution)) == 32
