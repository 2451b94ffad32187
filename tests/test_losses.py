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
