"""Each loss on inputs whose value is known in closed form."""
import math

import torch
import torch.nn.functional as F

from training import losses


def test_gan_losses_at_zero_logits_are_log2():
    z = torch.zeros(4, 1, 4, 4)
    assert math.isclose(losses.gan_loss_g(z).item(), math.log(2), rel_tol=1e-6)
    assert math.isclose(losses.gan_loss_d(z, z).item(), 2 * math.log(2), rel_tol=1e-6)


def test_gan_loss_d_rewards_separation():
    good = losses.gan_loss_d(torch.full((2, 1), 5.0), torch.full((2, 1), -5.0))
    bad = losses.gan_loss_d(torch.full((2, 1), -5.0), torch.full((2, 1), 5.0))
    assert good < 0.02 and bad > 9.9


def test_focal_ce_down_weights_easy_examples():
    logits = torch.tensor([[0.0, 0.0]])
    y = torch.tensor([0])
    # p_y = 0.5, CE = log 2 -> (1 - .5)^2 * log 2
    assert math.isclose(losses.focal_ce(logits, y, 2.0).item(), 0.25 * math.log(2), rel_tol=1e-6)
    assert math.isclose(losses.focal_ce(logits, y, 0.0).item(), F.cross_entropy(logits, y).item(), rel_tol=1e-6)


def test_l1_and_feature_matching():
    a, b = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    assert losses.l1(a, b).item() == 0.5
    assert losses.feature_matching([a, a], [b, b * 2]).item() == 1.5


def test_diversity_is_minus_mean_difference_over_noise_distance():
    f1, f2 = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    z1, z2 = torch.zeros(2, 4), torch.tensor([[2.0, 0, 0, 0], [0, 0, 0, 4.0]])
    # per-sample |diff| = 1, ||dz|| = 2 and 4 -> -(0.5 + 0.25)/2
    assert math.isclose(losses.diversity(f1, f2, z1, z2).item(), -0.375, rel_tol=1e-6)


def test_l1_nearest_pulls_only_the_draw_closer_to_the_target():
    real = torch.zeros(2, 3, 4, 4)
    f1 = torch.stack([torch.full((3, 4, 4), 0.1), torch.full((3, 4, 4), 0.9)]).requires_grad_(True)
    f2 = torch.stack([torch.full((3, 4, 4), 0.5), torch.full((3, 4, 4), 0.3)]).requires_grad_(True)
    loss = losses.l1_nearest(f1, f2, real)
    assert math.isclose(loss.item(), (0.1 + 0.3) / 2, rel_tol=1e-6)
    loss.backward()
    assert f1.grad[0].abs().sum() > 0 and f1.grad[1].abs().sum() == 0  # sample 0: draw 1 is nearer
    assert f2.grad[0].abs().sum() == 0 and f2.grad[1].abs().sum() > 0  # sample 1: draw 2 is nearer


def test_an_unknown_l1_draw_is_refused_with_the_choices():
    import pytest

    from training.config import TrainConfig
    with pytest.raises(ValueError, match="l1_draw must be 'first' or 'nearest', got 'best'"):
        TrainConfig(l1_draw="best")


def test_a_capped_diversity_stops_rewarding_a_draw_past_the_cap():
    z1, z2 = torch.zeros(2, 4), torch.ones(2, 4)  # ||dz|| = 2
    f1 = torch.zeros(2, 3, 2, 2)
    f2 = torch.stack([torch.full((3, 2, 2), 0.2), torch.full((3, 2, 2), 1.8)]).requires_grad_(True)
    assert math.isclose(losses.diversity(f1, f2, z1, z2).item(), -(0.1 + 0.9) / 2, rel_tol=1e-6)
    capped = losses.diversity(f1, f2, z1, z2, cap=0.3)
    assert math.isclose(capped.item(), -(0.1 + 0.3) / 2, rel_tol=1e-6)
    capped.backward()
    assert f2.grad[0].abs().sum() > 0 and f2.grad[1].abs().sum() == 0  # the capped sample gets no push
