"""Evaluation metrics, the pix2pix baseline and the optional VGG perceptual network."""
import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from training import losses
from training.checkpoint import CheckpointError
from training.config import preset
from training.evaluate import edge_fscore, evaluate_checkpoint
from training.perceptual_net import VGG16Features
from training.pix2pix import Pix2PixConfig, train_pix2pix
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
              "class_top1_real_photos", "diversity_mean_abs_diff"):
        assert 0.0 <= rep[k] <= 1.0, k
    assert rep["diversity_mean_abs_diff"] > 0  # different seeds give different images
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
