"""`iecast stylize` at its default pixel limit: one over is refused in one line that says how to
raise the limit, before anything is decoded; --max-pixels raises it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iecast.cli import main
from iecast.images import MAX_PIXELS
from image_files import png_header_only

FAST = ["--style-size", "32", "--quiet", "--precision", "fp32"]
WIDTH = 5000

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def style(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "RGB").save(tmp_path / "style.png")
    return tmp_path / "style.png"


def stylize(capsys, tmp_path, content, style, weights_file, *extra) -> tuple[int, str]:
    code = main([str(a) for a in ("stylize", "-c", content, "-s", style, "-o", tmp_path / "out" / "r.png",
                                  "--weights", weights_file, *FAST, *extra)])
    return code, capsys.readouterr().err


def test_one_pixel_over_the_default_limit_is_one_line_with_the_way_out(capsys, tmp_path, style, weights_file):
    height = MAX_PIXELS // WIDTH + 1
    content = png_header_only(tmp_path / "big.png", WIDTH, height)
    code, err = stylize(capsys, tmp_path, content, style, weights_file)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("iecast: error:"), err
    assert f"{WIDTH}x{height}" in err and f"pixel limit of {MAX_PIXELS}" in err and "--max-pixels N" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_raising_the_limit_lets_the_same_header_through(capsys, tmp_path, style, weights_file):
    # the file is only a header, so past the limit check it fails as unreadable, not as too large
    height = MAX_PIXELS // WIDTH + 1
    content = png_header_only(tmp_path / "big.png", WIDTH, height)
    code, err = stylize(capsys, tmp_path, content, style, weights_file, "--max-pixels", WIDTH * height)
    assert code == 1 and "pixel limit" not in err and len(err.strip().splitlines()) == 1, err
