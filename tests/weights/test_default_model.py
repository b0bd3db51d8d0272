"""The shipped default model: registered, intact, small, and it actually stylizes.

The behavioural checks compare against references computed here, not stored numbers: the
output must sit closer to the painting's feature statistics than the photo does, and keep
more of the photo's structure than an unrelated photo has.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from iecast import weights
from iecast.cli import demo
from iecast.images import load_image, pil_to_tensor
from iecast.training.losses import content_loss, style_loss
from iecast.inference.stylizer import Stylizer

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif("default" not in weights.PRETRAINED, reason="no default model registered yet (see docs/training/)"),
]
SIZE = 192


@pytest.fixture(scope="module")
def stylizer() -> Stylizer:
    return Stylizer.from_pretrained("default")


def _small(path) -> torch.Tensor:
    image = load_image(path)
    scale = SIZE / min(image.size)
    return pil_to_tensor(image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC))


def test_default_is_registered_packaged_fp16_and_small():
    entry = weights.PRETRAINED["default"]
    path = entry.path()  # checks the sha256
    assert path.parent.name == "assets" and path.stat().st_size < 20 * 2**20
    tensors, meta = weights.read_stylizer(path)
    assert meta["encoder"] == weights.DEFAULT_ENCODER == entry.encoder
    assert {t.dtype for t in tensors.values()} == {torch.float16}
    card = path.parent / "MODEL_CARD.md"
    assert card.is_file() and entry.file_name in card.read_text()


def test_default_is_the_carried_training_state():
    """Training continues from the default plus checkpoints/iecontraast-vgg16-rms/iecast.train.safetensors
    (discriminator + heads), so that state must belong to what ships (tests/training/test_carried_state.py
    checks every tensor of a warm start)."""
    from safetensors import safe_open

    carried = Path(__file__).resolve().parents[2] / "checkpoints" / "iecontraast-vgg16-rms" / "iecast.train.safetensors"
    shipped = weights.PRETRAINED["default"].path()  # checks the registered sha256
    meta = weights.read_stylizer(shipped)[1]
    iterations = json.loads(meta["config"])["iterations_trained"]
    with safe_open(str(carried), framework="pt") as fh:
        state = fh.metadata()
    assert state["encoder"] == meta["encoder"]
    assert int(state.get("iterations_trained", state["iteration"])) == iterations
    card = (shipped.parent / "MODEL_CARD.md").read_text()
    assert f"{iterations:,} iterations" in card


def test_default_moves_the_photo_towards_the_painting(stylizer, shared_data):
    encoder = stylizer.network.encoder
    content = _small(demo.sample_path(demo.SAMPLE_CONTENT))
    style = _small(demo.sample_path(demo.SAMPLE_STYLE))
    other_photo = _small(sorted((shared_data / "content").glob("*.jpg"))[0])
    other_photo = torch.nn.functional.interpolate(other_photo, size=content.shape[-2:], mode="bilinear")
    out = stylizer.stylize(content, style, style_size=None)
    assert out.shape == content.shape and out.min() >= 0 and out.max() <= 1
    with torch.no_grad():
        f_out, f_content, f_style, f_other = (encoder(x) for x in (out, content, style, other_photo))
    # style statistics: the output is nearer the painting than the photo is
    assert style_loss(f_out, f_style) < 0.5 * style_loss(f_content, f_style)
    # structure: the output keeps more of the photo than an unrelated photo shares with it
    assert content_loss(f_out, f_content) < content_loss(f_other, f_content)
    # not a flat colour field
    assert out.std(dim=(-2, -1)).mean() > 0.05


def test_make_demo_writes_a_stylized_sample(tmp_path, capsys):
    out = tmp_path / "demo.jpg"
    assert demo.main(["-o", str(out)]) == 0
    assert "'default'" in capsys.readouterr().out
    with Image.open(out) as result, Image.open(demo.sample_path(demo.SAMPLE_CONTENT)) as photo:
        assert result.size == photo.size
