"""The default limits that keep a run within 4 GB: auto tiling above AUTO_TILE_ABOVE, the pixel
limit counted on the padded size, and one home for each default (measurements: docs/performance.md)."""
from __future__ import annotations

import inspect

import pytest
import torch
from PIL import Image

from iecast import IecastError
from iecast.images import MAX_PIXELS, MAX_STYLE_PIXELS
from iecast.inference import stylizer as stylizer_module
from iecast.inference import tiling, video
from iecast.inference.options import StylizeOptions
from iecast.inference.resize import check_padded, padded_shape
from iecast.inference.stylizer import Stylizer
from iecast.inference.tiling import AUTO_TILE_ABOVE, DEFAULT_TILE, choose_tile

pytestmark = pytest.mark.usefixtures("one_thread")


def test_auto_tiles_exactly_above_the_threshold():
    width = 2048
    height = AUTO_TILE_ABOVE // width
    assert height * width == AUTO_TILE_ABOVE  # the threshold itself still runs whole
    assert choose_tile(height, width) is None
    assert choose_tile(height + 1, width) == DEFAULT_TILE
    assert choose_tile(1, AUTO_TILE_ABOVE + 1) == DEFAULT_TILE  # pixels count, not the longer side
    assert choose_tile(height + 1, width, None) is None and choose_tile(height + 1, width, 512) == 512


def test_defaults_are_ordered():
    # a tile (without its halo) is smaller than what auto leaves untiled, and both under the limit
    assert MAX_STYLE_PIXELS < MAX_PIXELS
    assert DEFAULT_TILE * DEFAULT_TILE <= AUTO_TILE_ABOVE < MAX_PIXELS


def test_every_default_max_pixels_is_the_one_constant():
    from iecast.cli.stylize import add_control_arguments
    import argparse

    assert inspect.signature(Stylizer.stylize).parameters["max_pixels"].default is MAX_PIXELS
    assert inspect.signature(video.stylize_video).parameters["max_pixels"].default is MAX_PIXELS
    assert StylizeOptions().max_pixels is MAX_PIXELS
    parser = argparse.ArgumentParser()
    add_control_arguments(parser)
    assert parser.parse_args([]).max_pixels is MAX_PIXELS
    assert video.MAX_PIXELS is MAX_PIXELS and stylizer_module.MAX_PIXELS is MAX_PIXELS


def test_padded_shape_and_check():
    assert padded_shape(3647, 5471) == (3648, 5472)
    assert padded_shape(16, 1000) == (32, 1008)  # a strip doubles
    check_padded("content", 16, 1000, 32 * 1008)
    check_padded("content", 16, 1000, None)
    with pytest.raises(IecastError, match="padded to 1008x32") as info:
        check_padded("content", 16, 1000, 32 * 1008 - 1)
    assert "--max-pixels" in str(info.value) and "max_pixels=" in str(info.value)


def test_a_strip_under_the_limit_is_refused_when_its_padding_is_over(weights_file):
    st = Stylizer.from_pretrained(weights_file, device="cpu", precision="fp32")
    strip, style = Image.new("RGB", (100, 16), (200, 40, 40)), Image.new("RGB", (32, 32), (0, 0, 200))
    padded = 112 * 32
    with pytest.raises(IecastError, match="padded to 112x32"):
        st.stylize(strip, style, style_size=32, max_pixels=padded - 1)
    assert st.stylize(strip, style, style_size=32, max_pixels=padded).size == (100, 16)


def test_auto_tiling_kicks_in_above_the_threshold_and_matches_whole(weights_file, monkeypatch):
    st = Stylizer.from_pretrained(weights_file, device="cpu", precision="fp32")
    content = torch.rand(1, 3, 96, 80, generator=torch.Generator().manual_seed(3))
    style = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    seen: list = []
    real = stylizer_module.encode_tiled

    def spy(encoder, image, taps, tile, out_dtype=None):
        if image.shape[-2:] == (96, 80):  # the content, not the style
            seen.append(tile)
        return real(encoder, image, taps, tile, out_dtype)

    monkeypatch.setattr(stylizer_module, "encode_tiled", spy)
    whole = st.stylize(content, style, style_size=32)
    monkeypatch.setattr(tiling, "AUTO_TILE_ABOVE", 96 * 80 - 1)
    monkeypatch.setattr(tiling, "DEFAULT_TILE", 64)
    tiled = st.stylize(content, style, style_size=32)
    assert seen == [None, 64]
    assert (whole - tiled).abs().max() < 1e-4
