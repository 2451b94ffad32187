"""DiffAugment (training/diffaugment.py): what each transform does, that gradients pass, that pairs stay pairs, and
that a run with it resumes exactly."""
import dataclasses

import pytest
import torch

from tests.test_training import _trainer
from training.config import TrainConfig
from training.diffaugment import augment, parse_policy


def _batch(n=6, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def test_no_policy_is_the_identity_and_unknown_names_are_refused():
    x = _batch()
    assert augment(x, policy="")[0] is x
    assert parse_policy(" color , cutout ") == ("color", "cutout")
    with pytest.raises(ValueError, match="unknown DiffAugment policy 'zoom'.*color, translation, cutout"):
        parse_policy("color,zoom")
    with pytest.raises(ValueError, match="unknown DiffAugment policy 'zoom'"):
        TrainConfig(diff_augment="zoom")
    with pytest.raises(ValueError, match="one shape"):
        augment(x, x[:2], policy="color")


@pytest.mark.parametrize("name", ["color", "translation", "cutout"])
def test_each_transform_keeps_the_shape_passes_gradients_and_pairs_samples(name):
    x = _batch().requires_grad_(True)
    (y,) = augment(x, policy=name, generator=torch.Generator().manual_seed(1))
    assert y.shape == x.shape and not torch.equal(y, x)
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # G learns through it
    a, b = augment(x.detach(), x.detach().clone(), policy=name, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)  # sample i of every batch gets the same transform
    again = augment(x.detach(), policy=name, generator=torch.Generator().manual_seed(2))[0]
    other = augment(x.detach(), policy=name, generator=torch.Generator().manual_seed(3))[0]
    assert torch.equal(a, again) and not torch.equal(a, other)


def test_translation_moves_content_by_at_most_an_eighth_and_cutout_blanks_half_a_side():
    x = torch.full((64, 1, 32, 32), -1.0)
    x[:, :, 16, 16] = 1.0  # one bright pixel in the middle
    (t,) = augment(x, policy="translation", generator=torch.Generator().manual_seed(0))
    ys, xs = torch.nonzero(t[:, 0] == 1.0, as_tuple=True)[1:]
    assert len(ys) == 64  # the pixel is still there in every sample (4 px from the middle stays inside) ...
    assert ((ys - 16).abs() <= 4).all() and ((xs - 16).abs() <= 4).all()  # ... moved by at most 32/8
    assert len({(int(a), int(b)) for a, b in zip(ys, xs)}) > 10  # and not the same way for every sample
    ones = torch.ones(64, 1, 32, 32)
    (c,) = augment(ones, policy="cutout", generator=torch.Generator().manual_seed(0))
    zeros = (c == 0).flatten(1).sum(1)
    assert zeros.max() == 16 * 16 and zeros.min() >= 8 * 8  # a 16 x 16 square, clipped at the border


@pytest.fixture
def one_thread():
    """One intra-op thread for the test (the trainer sets it globally), the process's setting again afterwards: a
    bit-exact comparison should not depend on how a loaded machine splits the reductions (seen once here, right after
    a CI run, in this test and in test_training's resume test: never reproduced since)."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_a_run_with_diffaugment_resumes_exactly(tiny_data, tmp_path, one_thread):
    over = {"diff_augment": "color,translation,cutout", "num_threads": 1}
    straight = _trainer(tiny_data, tmp_path / "a", **over)
    straight.run()
    first = _trainer(tiny_data, tmp_path / "b", **over)
    first.run(until=10)
    resumed = _trainer(tiny_data, tmp_path / "b", resume=True, **over)
    resumed.run()
    for (name, a), b in zip(straight.G.state_dict().items(), resumed.G.state_dict().values()):
        assert torch.equal(a, b), name
    plain = _trainer(tiny_data, tmp_path / "c", num_threads=1)
    plain.run(until=10)
    assert not all(torch.equal(a, b) for a, b in zip(plain.D.state_dict().values(), first.D.state_dict().values()))
    assert dataclasses.asdict(resumed.cfg)["diff_augment"] == "color,translation,cutout"
