"""Evaluation metrics, the pix2pix baseline and the optional VGG perceptual network."""
import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from training import losses
from training.checkpoint import CheckpointError
from training.config import Pix2PixConfig, preset
from training.evaluate import edge_fscore, evaluate_checkpoint
from training.perceptual_net import VGG16Features
from training.pix2pix import train_pix2pix
from training.train import RunOptions, Trainer


def test_edge_fscore_is_high_for_matching_edges_and_low_for_others():
    img = np.full((32, 32, 3), 255, np.uint8)
    img[8:24, 8:24] = (200, 30, 30)
    sketch = np.full((32, 32), 255, np.uint8)
    sketch[8, 8:24] = sketch[23, 8:24] = sketch[8:24, 8] = sketch[8:24, 23] = 0
    other = np.full((32, 32), 255, np.uint8)
    other[2:6, 26:30] = 0
    assert edge_fscore(sketch, img) > 0.9
    assert edge_fscore(other, img) < 0.2
    assert edge_fscore(sketch, np.full((32, 32, 3), 255, np.uint8)) == 0.0


@pytest.mark.slow
def test_evaluate_reports_sketchygan_and_pix2pix(tiny_data, tmp_path, sketchy_root):
    m, t = preset("tiny")
    Trainer(m, dataclasses.replace(t, steps=10), tiny_data,
            RunOptions(out=tmp_path / "g", data_spec=str(sketchy_root), progress=False)).run()
    rep = evaluate_checkpoint(tmp_path / "g" / "generator.safetensors", seeds=2, classifier_steps=30)
    assert rep["n_validation"] == 4 and rep["data_matches_training"]
    for k in ("sketch_fidelity_f2px", "sketch_fidelity_shuffled_baseline", "class_top1_generated",
              "judge_top1_real_validation", "diversity_mean_abs_diff", "worst_class_fidelity"):
        assert 0.0 <= rep[k] <= 1.0, k
    assert rep["diversity_mean_abs_diff"] > 0  # different seeds give different images
    assert set(rep["fidelity_per_class"]) <= set(tiny_data.class_names)
    assert rep["worst_class_fidelity"] == min(rep["fidelity_per_class"].values())
    path = train_pix2pix(Pix2PixConfig(steps=5, batch_size=4, width=8), tiny_data, tmp_path / "p",
                         data_spec=str(sketchy_root), progress=False)
    rep2 = evaluate_checkpoint(path, seeds=2, classifier_steps=30)
    assert rep2["kind"] == "pix2pix" and rep2["diversity_mean_abs_diff"] == 0.0  # pix2pix ignores noise


def test_vgg_perceptual_loss_from_local_weights(tmp_path):
    torch.manual_seed(0)
    net = VGG16Features()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "vgg.safetensors"))
    loaded = VGG16Features.from_file(tmp_path / "vgg.safetensors")
    a, b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    assert losses.perceptual(loaded, a, a).item() == 0.0
    assert losses.perceptual(loaded, a, b).item() > 0.0
    save_file({"features.0.weight": torch.zeros(1)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError, match="lacks VGG16 tensors"):
        VGG16Features.from_file(tmp_path / "bad.safetensors")


def test_class_template_score_is_zero_for_a_template_and_grows_when_outputs_follow_sketches():
    from training.evaluate import class_template_score
    rng = np.random.default_rng(0)
    sketches = np.where(rng.random((4, 16, 16)) < 0.2, 0, 255).astype(np.uint8)
    labels = np.array([0, 0, 1, 1])
    template = np.repeat(np.full((1, 16, 16, 3), 90, np.uint8), 4, 0)
    assert class_template_score(sketches, labels, template)["template_ratio"] == 0.0
    follows = np.repeat(np.where(sketches[..., None] < 128, 0, 255), 3, -1).astype(np.uint8)
    s = class_template_score(sketches, labels, follows)
    assert s["template_ratio"] == pytest.approx(1.0) and s["same_class_sketch_diff"] > 0


def test_the_edge_template_score_ignores_colour_but_sees_one_picture_per_class():
    from training.evaluate import class_template_score, edge_template_score
    sketches = np.full((4, 32, 32), 255, np.uint8)
    for k, (a, b) in enumerate([(4, 12), (16, 26), (6, 20), (10, 28)]):  # a different square outline per sketch
        sketches[k, a:b, a] = sketches[k, a:b, b - 1] = sketches[k, a, a:b] = sketches[k, b - 1, a:b] = 0
    labels = np.array([0, 0, 1, 1])
    # outputs that follow each sketch's shape, in one colour per class (pink / blue) ...
    colours = np.array([[230, 80, 160], [230, 80, 160], [40, 90, 220], [40, 90, 220]], np.uint8)
    shaped = np.full((4, 32, 32, 3), 255, np.uint8)
    for k in range(4):
        a, b = [(4, 12), (16, 26), (6, 20), (10, 28)][k]
        shaped[k, a:b, a:b] = colours[k]
    # ... and the same outputs in varied colours: the edge score is the same, the pixel score is not
    varied = shaped.copy()
    varied[1][(shaped[1] != 255).any(-1)] = [250, 160, 40]
    varied[3][(shaped[3] != 255).any(-1)] = [60, 200, 60]
    assert edge_template_score(sketches, labels, shaped) == edge_template_score(sketches, labels, varied) > 0.5
    assert class_template_score(sketches, labels, varied)["template_ratio"] > \
        class_template_score(sketches, labels, shaped)["template_ratio"]
    # one picture per class, whatever is drawn: 0
    template = shaped[[0, 0, 2, 2]]
    assert edge_template_score(sketches, labels, template) == 0.0


def test_thin_stroke_inputs_are_the_human_drawings_redrawn_one_or_two_pixels_wide(sketchy_root):
    from training.data import load_data
    from training.evaluate import validation_sketches
    data = load_data(str(sketchy_root), 32)
    idx, thin = validation_sketches(data, inputs="thin")
    assert len(idx) > 0 and thin.shape[1:] == (32, 32) and set(np.unique(thin)) <= {0, 255}
    assert all(data.sketch_of(i, np.random.default_rng(0)) is not None for i in idx)
    import cv2
    ink = (thin < 128).astype(np.uint8)
    assert ink.any(axis=(1, 2)).all()
    wide = sum(int(cv2.erode(i, np.ones((3, 3), np.uint8)).sum()) for i in ink)
    assert wide < 0.03 * ink.sum()  # strokes 1-2 px wide (thinning leaves a rare 2x2 knot at junctions)
    with pytest.raises(ValueError, match="inputs must be one of"):
        validation_sketches(data, inputs="crayon")
