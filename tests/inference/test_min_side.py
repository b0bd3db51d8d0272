"""One minimum image side (iecast.images.MIN_SIDE) for every place an image or a resize target meets the model."""
from __future__ import annotations

import argparse

import pytest

from iecast import IecastError, images
from iecast.inference import stylizer
from iecast.cli.stylize import control_kwargs
from iecast.evaluation.harness import EvalConfig, evaluate


def test_stylizer_refuses_below_the_shared_minimum():
    assert stylizer.MIN_SIDE == images.MIN_SIDE == 16


def flags(content_size=None, style_size=None) -> argparse.Namespace:
    return argparse.Namespace(alpha=1.0, preserve_color=None, content_size=content_size, style_size=style_size,
                              tile="auto", max_pixels=None)


def test_cli_size_flags_use_the_shared_minimum():
    low = images.MIN_SIDE - 1
    assert control_kwargs(flags(content_size=images.MIN_SIDE, style_size=images.MIN_SIDE))["content_size"] == images.MIN_SIDE
    assert control_kwargs(flags(style_size=0))["style_size"] is None  # 0 keeps the style's size
    with pytest.raises(IecastError, match=f"--content-size must be at least {images.MIN_SIDE} \\(got {low}\\)"):
        control_kwargs(flags(content_size=low))
    with pytest.raises(IecastError, match=f"--style-size must be 0 \\(keep\\) or at least {images.MIN_SIDE} \\(got {low}\\)"):
        control_kwargs(flags(style_size=low))


def test_eval_size_uses_the_shared_minimum(tmp_path):
    low = images.MIN_SIDE - 1
    config = EvalConfig(contents=tmp_path / "c", styles=tmp_path / "s", out=tmp_path / "out", methods=["gatys"], size=low)
    with pytest.raises(IecastError, match=f"--size must be >= {images.MIN_SIDE} \\(got {low}\\)"):
        evaluate(config)
    assert not (tmp_path / "out").exists()


def test_load_image_refuses_only_empty_images(tmp_path):
    from PIL import Image

    Image.new("RGB", (1, 1)).save(tmp_path / "one.png")
    assert images.load_image(tmp_path / "one.png").size == (1, 1)  # too small for the model, refused where it is used
