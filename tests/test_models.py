"""Generator / discriminator shapes, blank sketches, batch invariance and the in-graph sketch transform."""
import pytest
import torch

from training.config import ModelConfig
from training.discriminator import Discriminator
from training.generator import Generator
from training.sketch_transform import SketchTransform


@pytest.mark.parametrize("res", [64, 128])
@pytest.mark.parametrize("variant", ["official", "paper"])
def test_generator_and_discriminator_shapes(res, variant):
    cfg = ModelConfig(resolution=res, width=4, noise_dim=8, num_classes=3, mru_variant=variant)
    g, d = Generator(cfg), Discriminator(cfg)
    sketch = torch.rand(2, 1, res, res)
    out = g(sketch, torch.tensor([0, 2]), torch.randn(2, 8))
    assert out.shape == (2, 3, res, res)
    assert out.abs().max() <= 1.0
    logits, cls = d(out)
    assert logits.shape == (2, 1, res // 16, res // 16)
    assert cls.shape == (2, 3)


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_blank_sketch_gives_finite_image(value):
    cfg = ModelConfig(resolution=64, width=4, noise_dim=8, num_classes=3)
    g = Generator(cfg)
    for mode in (g.train, g.eval):
        mode()
        out = g(torch.full((3, 1, 64, 64), value), torch.tensor([0, 1, 2]), torch.randn(3, 8))
        assert torch.isfinite(out).all()


def test_eval_mode_is_batch_invariant():
    torch.manual_seed(0)
    cfg = ModelConfig(resolution=64, width=4, noise_dim=8, num_classes=3)
    g = Generator(cfg)
    g.train()
    for _ in range(3):  # give the running statistics something other than their initial values
        g(torch.rand(4, 1, 64, 64), torch.randint(0, 3, (4,)), torch.randn(4, 8))
    g.eval()
    sketch, y, z = torch.rand(8, 1, 64, 64), torch.randint(0, 3, (8,)), torch.randn(8, 8)
    with torch.no_grad():
        alone = g(sketch[3:4], y[3:4], z[3:4])
        batched = g(sketch, y, z)[3:4]
    assert (alone - batched).abs().max() < 1e-5


def test_train_mode_is_not_batch_invariant():
    """The check above can fail: batch statistics (the reference's behaviour) do leak across a batch."""
    torch.manual_seed(0)
    g = Generator(ModelConfig(resolution=64, width=4, noise_dim=8, num_classes=3)).train()
    sketch, y, z = torch.rand(8, 1, 64, 64), torch.randint(0, 3, (8,)), torch.randn(8, 8)
    with torch.no_grad():
        assert (g(sketch[2:4], y[2:4], z[2:4]) - g(sketch, y, z)[2:4]).abs().max() > 1e-3


def test_distance_map_counts_pixels_to_nearest_stroke():
    sketch = torch.ones(1, 1, 9, 9)
    sketch[0, 0, 4, 4] = 0.0  # one ink pixel in the middle
    out = SketchTransform(steps=3)(sketch)
    ink, dist = out[0, 0], out[0, 1]
    assert ink[4, 4] == -1 and ink[0, 0] == 1
    # chessboard distance d -> 2*min(d, 3)/3 - 1
    assert dist[4, 4] == -1
    assert torch.isclose(dist[4, 5], torch.tensor(2 * 1 / 3 - 1))
    assert torch.isclose(dist[2, 6], torch.tensor(2 * 2 / 3 - 1))
    assert dist[0, 0] == 1  # beyond the truncation
