"""Stylizer controls (strength, blending, masks, colour), any size, tiling, precision.

Random-initialised networks: these properties hold for any weights, so no training is needed.
"""
from __future__ import annotations

import warnings

import pytest
import torch

from iecast import IecastError
from iecast.inference.color import match_color_histogram, rgb_to_ycbcr
from iecast.models import SANetTransform, StyleTransferNetwork
from iecast.models.transform import AdaINTransform
from iecast.inference.stylizer import (DEFAULT_STYLE_SIZE, IecastWarning, PreparedStyle, Stylizer, effective_style_size, load_mask,
                             normalise_style_weights, pad_to_multiple, resolve_precision)
from iecast.inference.tiling import decoder_halo, encode_tiled, encoder_halo
from iecast.weights import load_encoder
from reference import small_init_

ENCODER = "vgg16-imagenet-offline-normalised"


pytestmark = pytest.mark.usefixtures("one_thread")


def lively_network(transform=None) -> StyleTransferNetwork:
    """Random weights scaled so the style visibly changes the output (PyTorch's default init
    shrinks the signal through the decoder until every style gives nearly the same image)."""
    torch.manual_seed(0)
    network = StyleTransferNetwork(load_encoder(ENCODER), transform or SANetTransform()).eval()
    small_init_(network.decoder)
    small_init_(network.transform)
    with torch.no_grad():
        network.decoder.layers[-1].weight.mul_(0.02)
        network.decoder.layers[-1].bias.fill_(0.5)
    return network


@pytest.fixture(scope="module")
def network() -> StyleTransferNetwork:
    return lively_network()


@pytest.fixture(scope="module")
def stylizer(network) -> Stylizer:
    return Stylizer(network, precision="fp32")


def images(*shapes, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, 3, *s, generator=g) for s in shapes]


def reference(network, content, style, alpha=1.0):
    """The plain network on the reflection-padded content, cropped back: what stylize must equal."""
    with torch.no_grad():
        padded, (h, w) = pad_to_multiple(content)
        return network(padded, style, alpha=alpha)[..., :h, :w].clamp(0, 1)


@pytest.mark.parametrize("alpha", [1.0, 0.4, 0.0])
def test_matches_plain_network(network, stylizer, alpha):
    content, style = images((48, 40), (32, 48))
    out = stylizer.stylize(content, style, alpha)
    expected = reference(network, content, style, alpha)
    assert expected.std() > 1e-3
    assert (out - expected).abs().max() < 1e-5


def test_alpha_zero_is_reconstruction_and_monotone(network, stylizer):
    content, style = images((48, 48), (48, 48), seed=2)
    outs = {a: stylizer.stylize(content, style, a) for a in (0.0, 0.25, 0.5, 0.75, 1.0)}
    with torch.no_grad():
        reconstruction = network.decoder(network.transform(network.encode(content), network.encode(content))).clamp(0, 1)
        full = network(content, style).clamp(0, 1)
    assert (outs[0.0] - reconstruction).abs().max() < 1e-5
    assert (outs[1.0] - full).abs().max() < 1e-5
    to_content = [(outs[a] - outs[0.0]).abs().mean().item() for a in sorted(outs)]
    to_full = [(outs[a] - outs[1.0]).abs().mean().item() for a in sorted(outs)]
    assert to_content == sorted(to_content) and to_content[-1] > 1e-3
    assert to_full == sorted(to_full, reverse=True)


def test_one_hot_weights_equal_single_style(stylizer):
    content, style_a, style_b = images((40, 56), (32, 32), (48, 32), seed=3)
    single = stylizer.stylize(content, style_a)
    assert torch.equal(stylizer.stylize(content, [style_a, style_b], style_weights=[1, 0]), single)
    blend = stylizer.stylize(content, [style_a, style_b], style_weights=[0.5, 0.5])
    assert (blend - single).abs().max() > 1e-3


def test_blend_is_interpolation_of_transformed_features(network, stylizer):
    content, style_a, style_b = images((32, 32), (32, 32), (32, 48), seed=4)
    out = stylizer.stylize(content, [style_a, style_b], style_weights=[0.3, 0.7])
    with torch.no_grad():
        c = network.encode(content)
        feats = 0.3 * network.transform(c, network.encode(style_a)) + 0.7 * network.transform(c, network.encode(style_b))
        expected = network.decoder(feats).clamp(0, 1)
    assert (out - expected).abs().max() < 1e-5


def test_weights_are_normalised_with_a_warning(stylizer):
    content, style_a, style_b = images((32, 32), (32, 32), (32, 32), seed=5)
    with pytest.warns(IecastWarning, match="normalised"):
        loud = stylizer.stylize(content, [style_a, style_b], style_weights=[2, 6])
    assert torch.allclose(loud, stylizer.stylize(content, [style_a, style_b], style_weights=[0.25, 0.75]), atol=1e-6)
    for bad in ([1], [-1, 2], [0, 0], [float("nan"), 1]):
        with pytest.raises(IecastError):
            normalise_style_weights(bad, 2)


def test_all_ones_mask_equals_unmasked(stylizer):
    content, style = images((40, 48), (32, 32), seed=6)
    ones = torch.ones(40, 48)
    assert torch.allclose(stylizer.stylize(content, style, masks=[ones]), stylizer.stylize(content, style), atol=1e-6)


def test_masks_put_each_style_in_its_region(stylizer):
    """Far from the boundary (more than the decoder's reach) each half equals that style alone."""
    content, style_a, style_b = images((64, 192), (32, 32), (32, 32), seed=7)
    left = torch.zeros(64, 192)
    left[:, :96] = 1
    out = stylizer.stylize(content, [style_a, style_b], masks=[left, 1 - left])
    only_a, only_b = stylizer.stylize(content, style_a), stylizer.stylize(content, style_b)
    reach = 8 * (stylizer._decoder_halo + 1)
    assert (out[..., : 96 - reach] - only_a[..., : 96 - reach]).abs().max() < 1e-5
    assert (out[..., 96 + reach:] - only_b[..., 96 + reach:]).abs().max() < 1e-5
    # no mask anywhere: the content's reconstruction
    assert torch.allclose(stylizer.stylize(content, style_a, masks=[torch.zeros(64, 192)]),
                          stylizer.stylize(content, style_a, alpha=0.0), atol=1e-6)


def test_mask_fixups_warn(tmp_path):
    from PIL import Image

    grey = Image.new("L", (20, 10), 100)
    grey.paste(200, (10, 0, 20, 10))
    grey.save(tmp_path / "m.png")
    with pytest.warns(IecastWarning) as record:
        mask = load_mask(tmp_path / "m.png", (30, 40))
    messages = " ".join(str(w.message) for w in record)
    assert "resized" in messages and "thresholded" in messages
    assert mask.shape == (1, 1, 30, 40) and set(mask.unique().tolist()) == {0.0, 1.0}
    assert mask[0, 0, :, :20].sum() == 0 and mask[0, 0, :, 20:].min() == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_mask(torch.ones(30, 40), (30, 40))  # binary and the right size: silent


def test_luminance_keeps_content_chroma(stylizer):
    content, style = images((48, 64), (32, 32), seed=8)
    content = 0.25 + 0.5 * content  # away from the gamut's edge, so clamping rarely bites
    out = stylizer.stylize(content, style, preserve_color="luminance")
    plain = stylizer.stylize(content, style)
    ycc_out, ycc_content, ycc_plain = rgb_to_ycbcr(out), rgb_to_ycbcr(content), rgb_to_ycbcr(plain)
    inside = ((out > 1e-4) & (out < 1 - 1e-4)).all(dim=1)
    assert inside.float().mean() > 0.5
    assert (ycc_out[:, 1:] - ycc_content[:, 1:]).abs().amax(dim=1)[inside].max() < 1e-4
    assert (ycc_out[:, 0] - ycc_plain[:, 0])[inside].abs().max() < 1e-4
    assert (ycc_plain[:, 1:] - ycc_content[:, 1:]).abs().mean() > 1e-3  # the plain result changed the colours


def test_histogram_matching_gives_content_colour_statistics(stylizer):
    g = torch.Generator().manual_seed(9)
    style = 0.4 + 0.1 * torch.rand(1, 3, 40, 40, generator=g) + torch.tensor([0.2, -0.1, 0.0]).view(1, 3, 1, 1)
    content = 0.5 + 0.1 * torch.randn(1, 3, 30, 50, generator=g).clamp(-2, 2)
    matched = match_color_histogram(style, content)
    flat_m, flat_c = matched.reshape(3, -1).double(), content.reshape(3, -1).double()
    assert torch.allclose(flat_m.mean(1), flat_c.mean(1), atol=1e-4)
    assert torch.allclose(torch.cov(flat_m), torch.cov(flat_c), atol=1e-4)
    out = stylizer.stylize(content, style, preserve_color="histogram")
    assert out.shape == content.shape
    assert (out - stylizer.stylize(content, style)).abs().max() > 1e-4


@pytest.mark.parametrize("size, padded, mode", [((333, 517), (336, 528), "reflect"), ((37, 53), (48, 64), "reflect"),
                                                 ((16, 16), (32, 32), "replicate")])
def test_any_size_round_trips(network, stylizer, size, padded, mode):
    """Same shape, and the same pixels as the plain network on the content padded by hand (bottom/right
    to a multiple of 16 and at least 32; replicate where the side is too short to reflect), cropped back."""
    content, style = images(size, (32, 32), seed=10)
    out = stylizer.stylize(content, style)
    assert out.shape == content.shape
    assert torch.isfinite(out).all() and 0 <= float(out.min()) and float(out.max()) <= 1
    (h, w), (ph, pw) = size, padded
    with torch.no_grad():
        expected = network(torch.nn.functional.pad(content, (0, pw - w, 0, ph - h), mode=mode), style)
    expected = expected[..., :h, :w].clamp(0, 1)
    assert expected.std() > 1e-3  # the output depends on the pixels, so a shifted or mis-padded crop shows
    assert (out - expected).abs().max() < 1e-5


def test_pil_in_pil_out_with_odd_size(stylizer):
    from PIL import Image

    content = Image.new("RGB", (53, 37), (120, 60, 30))
    out = stylizer.stylize(content, Image.new("RGB", (40, 40), (0, 0, 200)), style_size=32)
    assert isinstance(out, Image.Image) and out.size == (53, 37)


def test_tiled_equals_untiled(stylizer):
    content, style = images((200, 168), (32, 32), seed=11)
    whole = stylizer.stylize(content, style, 0.8, tile=None)
    tiled = stylizer.stylize(content, style, 0.8, tile=64)  # many tiles, every kind of edge
    assert (whole - tiled).abs().max() < 1 / 255


def test_encoder_tiles_match_whole_image(network):
    x = images((160, 224), seed=12)[0]
    taps = ("relu4_1", "relu5_1")
    with torch.no_grad():
        whole = network.encoder(x, taps=taps)
        tiled = encode_tiled(network.encoder, x, taps, 64)
        halved = network.encoder(x)
    for tap in taps:
        assert torch.allclose(whole[tap], halved[tap])
        assert (whole[tap] - tiled[tap]).abs().max() < 1e-4 * whole[tap].abs().max()


def test_halo_widths():
    assert encoder_halo(load_encoder(ENCODER), "relu5_1") == 64
    assert encoder_halo(load_encoder(ENCODER), "relu4_1") == 32
    from iecast.models.decoder import Decoder

    assert decoder_halo(Decoder().layers, extra_convs=1) == 5
    assert decoder_halo(Decoder().layers, extra_convs=0) == 4


def test_deterministic_and_prepared_style_reuse(stylizer):
    content, style = images((40, 40), (32, 32), seed=13)
    first = stylizer.stylize(content, style)
    prepared = stylizer.prepare_style(style)
    assert isinstance(prepared, PreparedStyle)
    assert torch.equal(stylizer.stylize(content, style), first)
    assert torch.equal(stylizer.stylize(content, prepared), first)


def test_style_size_resizes_files_but_not_tensors(stylizer, tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 48), (10, 200, 30)).save(tmp_path / "s.png")
    assert effective_style_size("auto", tmp_path / "s.png") == DEFAULT_STYLE_SIZE == 512
    assert effective_style_size("auto", tmp_path / "s.png", auto_size=256) == 256
    assert effective_style_size("auto", torch.rand(1, 3, 8, 8)) is None
    assert stylizer.prepare_style(tmp_path / "s.png", style_size=32).size == (32, 43)
    assert stylizer.prepare_style(torch.rand(1, 3, 48, 64)).size == (48, 64)
    assert stylizer.prepare_style(torch.rand(1, 3, 48, 64), style_size=40).size == (40, 53)
    with pytest.raises(IecastError):
        effective_style_size(8, torch.rand(1, 3, 8, 8))


def test_auto_style_size_is_the_models_training_scale(network, tmp_path):
    from PIL import Image

    from iecast.weights import load_stylizer, save_stylizer

    Image.new("RGB", (90, 60), (10, 200, 30)).save(tmp_path / "s.png")
    assert Stylizer(network).training_style_size == 512  # no record: the release's scale
    for config, expected in (({"resize": 256, "crop": 128}, 256), ({"resize": 512}, 512), ({}, 512)):
        path = save_stylizer(tmp_path / "m.safetensors", network, network.encoder.source, config=config)
        trained = Stylizer(load_stylizer(path, encoder=network.encoder))
        assert trained.training_style_size == expected
        assert trained.prepare_style(tmp_path / "s.png").size == (expected, expected * 3 // 2)
        assert trained.prepare_style(tmp_path / "s.png", style_size=None).size == (60, 90)
    path = save_stylizer(tmp_path / "bad.safetensors", network, network.encoder.source, config={"resize": "x"})
    with pytest.raises(IecastError, match="resize = 'x', not a count"):
        load_stylizer(path, encoder=network.encoder)  # a malformed header is refused, not guessed at


def test_identity_keys_follow_the_training_scale(network, tmp_path):
    """With alpha < 1 the content's own keys come from the content at the model's training scale."""
    from iecast.weights import load_stylizer, save_stylizer

    path = save_stylizer(tmp_path / "m.safetensors", network, network.encoder.source, config={"resize": 32})
    trained = Stylizer(load_stylizer(path, encoder=network.encoder))
    content, style = images((64, 64), (48, 48), seed=3)
    prepared = [trained.prepare_style(style)]
    auto = trained.stylize_prepared(content, prepared, alpha=0.5)
    assert torch.equal(auto, trained.stylize_prepared(content, prepared, alpha=0.5, identity_size=32))
    assert (auto - trained.stylize_prepared(content, prepared, alpha=0.5, identity_size=None)).abs().max() > 1e-3
    assert torch.equal(trained.stylize(content, style, alpha=0.5), auto)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_alpha_outside_unit_interval_is_an_error(stylizer, alpha):
    content, style = images((32, 32), (32, 32))
    with pytest.raises(IecastError, match="alpha"):
        stylizer.stylize(content, style, alpha)


def test_bad_arguments(stylizer):
    content, style = images((32, 32), (32, 32))
    with pytest.raises(IecastError, match="too small"):
        stylizer.stylize(torch.rand(1, 3, 1, 1), style)
    with pytest.raises(IecastError, match="colour mode"):
        stylizer.stylize(content, style, preserve_color="sepia")
    with pytest.raises(IecastError, match="one mask per style"):
        stylizer.stylize(content, [style, style], masks=[torch.ones(32, 32)])
    with pytest.raises(IecastError, match="either"):
        stylizer.stylize(content, style, style_weights=[1], masks=[torch.ones(32, 32)])


def test_precision_choice():
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == torch.float32
    assert resolve_precision("bf16", cpu) == torch.bfloat16
    assert resolve_precision("auto", cpu) in (torch.float32, torch.bfloat16)
    with pytest.raises(IecastError):
        resolve_precision("fp8", cpu)


def test_bf16_is_close_to_fp32(network):
    content, style = images((32, 32), (32, 32), seed=14)
    fp32 = Stylizer(network, precision="fp32").stylize(content, style)
    bf16 = Stylizer(network, precision="bf16").stylize(content, style)
    network.to(memory_format=torch.contiguous_format)
    assert bf16.dtype == torch.float32
    assert (bf16 - fp32).abs().mean() < 0.03


def test_adain_transform_works_through_the_same_pipeline():
    network = lively_network(AdaINTransform())
    content, style_a, style_b = images((40, 40), (32, 32), (32, 32), seed=15)
    out = Stylizer(network, precision="fp32").stylize(content, [style_a, style_b], style_weights=[1, 0], alpha=0.5)
    assert (out - reference(network, content, style_a, 0.5)).abs().max() < 1e-5
