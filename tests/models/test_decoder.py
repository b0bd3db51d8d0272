"""The decoder's fused upsample -> pad -> conv against the release's op-by-op order."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from iecast.models.functional import upsample_reflect_conv3x3
from iecast.models import Decoder


def three_steps(x, weight, bias):
    upsampled = F.interpolate(x, scale_factor=2, mode="nearest")
    return F.conv2d(F.pad(upsampled, (1, 1, 1, 1), mode="reflect"), weight, bias)


@pytest.mark.parametrize("size", [(1, 1), (1, 5), (4, 3), (7, 7)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_fused_upsample_conv_equals_three_steps_with_gradients(size, with_bias):
    torch.manual_seed(0)
    x = torch.randn(2, 5, *size, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(4, 5, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(4, dtype=torch.float64, requires_grad=True) if with_bias else None
    inputs = (x, weight, bias) if with_bias else (x, weight)
    expected = three_steps(x, weight, bias)
    ours = upsample_reflect_conv3x3(x, weight, bias)
    assert ours.shape == expected.shape == (2, 4, 2 * size[0], 2 * size[1])
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)
    upstream = torch.randn_like(expected)
    for g_ours, g_expected in zip(torch.autograd.grad(ours, inputs, upstream), torch.autograd.grad(expected, inputs, upstream)):
        torch.testing.assert_close(g_ours, g_expected, rtol=0, atol=1e-11)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_fused_upsample_conv_keeps_channels_last(dtype):
    """A channels_last input gives a channels_last output (no layout round trip), same values."""
    torch.manual_seed(0)
    x = torch.randn(1, 6, 5, 7, dtype=torch.float64)
    weight, bias = torch.randn(4, 6, 3, 3, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    expected = three_steps(x, weight, bias)
    last = [t.to(dtype).contiguous(memory_format=torch.channels_last) for t in (x, weight)]
    ours = upsample_reflect_conv3x3(*last, bias.to(dtype))
    assert ours.is_contiguous(memory_format=torch.channels_last) and not ours.is_contiguous()
    assert ours.dtype == dtype and ours.shape == expected.shape
    tolerance = 1e-12 if dtype == torch.float64 else 0.1 * float(expected.abs().max())
    torch.testing.assert_close(ours.double(), expected, rtol=0, atol=tolerance)


def randomised_decoder() -> Decoder:
    torch.manual_seed(1)
    decoder = Decoder()
    with torch.no_grad():
        for p in decoder.parameters():
            p.normal_(0, 0.05)
    return decoder


def test_decoder_forward_equals_the_release_order():
    decoder = randomised_decoder().double()
    features = torch.rand(2, 512, 5, 6, dtype=torch.float64)
    ours, release = decoder(features), decoder.layers(features)
    assert ours.shape == (2, 3, 40, 48)
    assert release.abs().mean() > 1e-3
    torch.testing.assert_close(ours, release, rtol=0, atol=1e-10)
    grads = [torch.autograd.grad(out.square().sum(), list(decoder.parameters())) for out in (ours, release)]
    for g_ours, g_release in zip(*grads):
        torch.testing.assert_close(g_ours, g_release, rtol=1e-7, atol=1e-9)
    decoder.float()
    ours, release = decoder(features.float()), decoder.layers(features.float())
    assert (ours - release).abs().max() < 1e-5 * release.abs().max()  # float32 rounding only


def test_decoder_saves_a_quarter_of_its_multiply_adds():
    decoder, features = randomised_decoder(), torch.rand(1, 512, 16, 16)
    counts = []
    for run in (decoder, decoder.layers):
        with FlopCounterMode(display=False) as counter:
            run(features)
        counts.append(counter.get_total_flops())
    assert 0.72 < counts[0] / counts[1] < 0.77
