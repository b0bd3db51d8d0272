"""`Stylizer.stylize_batch`: same-size contents in one forward give each item's own result."""
from __future__ import annotations

import pytest
import torch

from iecast.images import MAX_PIXELS
from iecast.inference import batch as batching
from iecast.inference.options import StylizeOptions
from iecast.inference.resize import padded_shape
from iecast.inference.stylizer import Stylizer
from iecast.inference.tiling import AUTO_TILE_ABOVE
from iecast.models import SANetTransform, StyleTransferNetwork
from iecast.weights import DEFAULT_ENCODER, load_encoder
from reference import small_init_

SAMPLES = ("classic_cars.jpg", "water_lilies.jpg", "great_wave.jpg")
ROUNDING = 1e-4  # a 40th of a grey level; a batch's convolutions round differently, by CPU (2.9e-5 on AVX2)
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def stylizer() -> Stylizer:
    torch.manual_seed(0)
    network = StyleTransferNetwork(load_encoder(DEFAULT_ENCODER), SANetTransform()).eval()
    small_init_(network.decoder)
    small_init_(network.transform)
    with torch.no_grad():  # outputs mostly inside (0, 1), as a trained model's, so clamping hides no differences
        network.decoder.layers[-1].weight.mul_(0.02)
        network.decoder.layers[-1].bias.fill_(0.5)
    return Stylizer(network, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def photos(stylizer) -> list[torch.Tensor]:
    """The bundled sample photos, resized to a shorter side of 64 and cropped to 64x80."""
    from iecast.cli.demo import sample_path

    loaded = [stylizer.load_content(sample_path(name), StylizeOptions(content_size=64)) for name in SAMPLES]
    return [x[:, :, :64, :80].contiguous() for x in loaded]


@pytest.fixture(scope="module")
def style(stylizer):
    from iecast.cli.demo import SAMPLE_STYLE, sample_path

    return stylizer.prepare_style(sample_path(SAMPLE_STYLE), style_size=64)


@pytest.mark.parametrize("alpha, identity_size, tolerance",
                         [(1.0, "auto", ROUNDING), (0.6, "auto", ROUNDING), (0.6, 48, 2 * ROUNDING)])
def test_a_batch_gives_each_item_its_own_result(stylizer, photos, style, alpha, identity_size, tolerance):
    """Equal up to float rounding: the encoder's convolutions round differently for a batch of 3 (relu4_1
    differs by ~1e-6 of its range), and the attention (scale 1, sharp) amplifies that, to 1e-6-3e-5
    depending on the CPU's kernels. With the content's own keys from a downscaled copy (identity_size
    48 < 64) both sides of one attention carry it."""
    options = StylizeOptions(alpha=alpha, style_size=identity_size)
    alone = [stylizer.stylize(p, style, options=options) for p in photos]
    together = stylizer.stylize_batch(photos, style, options=options, batch_size=3)
    assert len(together) == len(photos)
    for a, b in zip(alone, together):
        assert a.shape == b.shape == (1, 3, 64, 80)
        assert (a - b).abs().max().item() <= tolerance


def test_blends_of_styles_batch_too(stylizer, photos, style):
    from iecast.cli.demo import sample_path

    second = stylizer.prepare_style(sample_path("great_wave.jpg"), style_size=48)
    options = StylizeOptions(style_weights=(0.3, 0.7))
    alone = stylizer.stylize(photos[1], [style, second], options=options)
    together = stylizer.stylize_batch(photos[:2], [style, second], options=options, batch_size=2)
    assert (alone - together[1]).abs().max().item() <= ROUNDING


def test_unequal_sizes_and_colour_modes_go_one_at_a_time(stylizer, photos, style):
    mixed = [photos[0], photos[1][:, :, :48, :64], photos[2]]
    out = stylizer.stylize_batch(mixed, style, batch_size=4)
    assert [tuple(o.shape[-2:]) for o in out] == [(64, 80), (48, 64), (64, 80)]
    assert (out[1] - stylizer.stylize(mixed[1], style)).abs().max().item() <= 1e-5
    luminance = StylizeOptions(preserve_color="luminance")
    out = stylizer.stylize_batch(photos[:2], style, options=luminance, batch_size=2)
    assert (out[0] - stylizer.stylize(photos[0], style, options=luminance)).abs().max().item() <= 1e-5


def test_groups_keep_sizes_apart_and_stay_within_the_pixel_limits():
    options = StylizeOptions().checked(1)
    contents = [torch.zeros(1, 3, *s) for s in [(64, 80), (48, 64), (64, 80), (64, 80), (48, 64)]]
    assert batching.batches(contents, options, 2) == [[0, 2], [1, 4], [3]]
    assert batching.batches(contents, options, 1) == [[i] for i in range(5)]
    # N contents count N times their padded pixels: at most max_pixels, and AUTO_TILE_ABOVE with tile='auto'
    h, w = 720, 1000
    pixels = padded_shape(h, w)[0] * padded_shape(h, w)[1]
    assert batching.batch_cap(h, w, options, 64) == AUTO_TILE_ABOVE // pixels
    limited = StylizeOptions(max_pixels=3 * pixels, tile=None).checked(1)
    assert batching.batch_cap(h, w, limited, 64) == 3
    assert batching.batch_cap(h, w, StylizeOptions(tile=None, max_pixels=None).checked(1), 64) == 64
    assert batching.batch_cap(4000, 3000, options, 8) == 1  # tiled: one at a time
    assert batching.batch_cap(h, w, StylizeOptions(tile=512).checked(1), 8) == 1
    assert MAX_PIXELS // pixels >= 3


def test_default_batch_size_is_one_on_cpu():
    assert batching.default_batch_size(torch.device("cpu")) == 1
    assert batching.default_batch_size(torch.device("cuda")) == batching.AUTO_CUDA_BATCH
