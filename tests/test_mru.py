"""MRU blocks against hand-computed values."""
import torch
from torch import nn

from training.mru import MRUDecoderBlock, MRUEncoderBlock
from training.norms import minmax


def _identity_kernel(conv: nn.Conv2d, per_input: list[float], bias: float = 0.0) -> None:
    with torch.no_grad():
        conv.weight.zero_()
        for i, w in enumerate(per_input):
            conv.weight[0, i, 1, 1] = w
        conv.bias.fill_(bias)


def test_encoder_block_matches_hand_computation():
    # c_h = d = 1, no norm, identity activations, every 3x3 conv an identity tap:
    #   g = minmax(lrelu(h + I + 0.5)), h+ = h + g*I, t = h+, y = h + conv2(t) = 2h + g*I
    blk = MRUEncoderBlock(1, 1, 1, num_classes=None, act="prelu", sn=False, downsample=False, eps=1e-5)
    for name in ("a_in", "a1", "a2"):
        setattr(blk, name, nn.Identity())
    _identity_kernel(blk.gate, [1.0, 1.0], bias=0.5)
    for c in (blk.img, blk.conv1, blk.conv2):
        _identity_kernel(c, [1.0])
    h = torch.tensor([[1.0, -1.0], [0.0, 2.0]]).view(1, 1, 2, 2)
    img = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).view(1, 1, 2, 2)
    # pre-gate [[1.5, .5], [1.5, 2.5]] -> minmax [[.5, 0], [.5, 1]]; g*I = [[0, 0], [.5, 0]]
    expected = torch.tensor([[2.0, -2.0], [0.5, 4.0]]).view(1, 1, 2, 2)
    assert torch.allclose(blk(h, img), expected, atol=1e-4)


def test_encoder_block_downsamples_by_mean_pool():
    blk = MRUEncoderBlock(3, 2, 5, num_classes=None, act="prelu", sn=True)
    out = blk(torch.randn(2, 3, 8, 8), torch.randn(2, 2, 8, 8))
    assert out.shape == (2, 5, 4, 4)


def test_decoder_block_output_gate_mixes_projection_and_features():
    # z gate = 0 everywhere (constant pre-activation -> minmax 0) => y = P(up(h)) = up(h) when c_h == d
    blk = MRUDecoderBlock(1, 1, 1, num_classes=None)
    with torch.no_grad():
        blk.gate_z.weight.zero_()
        blk.gate_z.bias.fill_(3.0)
    h = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    out = blk(h, torch.zeros(1, 1, 4, 4))
    up = torch.nn.functional.interpolate(h, scale_factor=2.0, mode="nearest")
    assert torch.allclose(out, up)


def test_minmax_of_constant_map_is_finite():
    x = torch.full((2, 3, 4, 4), 7.0)
    out = minmax(x, 1e-5)
    assert torch.isfinite(out).all() and (out == 0).all()
    y = torch.arange(16.0).view(1, 1, 4, 4)
    out = minmax(y, 0.0)
    assert out.min() == 0 and out.max() == 1
