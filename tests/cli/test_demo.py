"""`make demo`: the bundled samples exist; with no trained weights the demo says how to get
them and shows a real Gatys stylization instead, checked against the photo itself."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from iecast import weights
from iecast.weights import registry
from iecast.cli import demo
from iecast.images import load_image, pil_to_tensor
from iecast.training.losses import style_loss
from iecast.weights import PretrainedWeights


def test_bundled_samples_are_small_images():
    for name in (demo.SAMPLE_CONTENT, demo.SAMPLE_STYLE):
        with Image.open(demo.sample_path(name)) as im:
            assert max(im.size) <= 512 and im.mode == "RGB"
    assert (demo.sample_path(demo.SAMPLE_CONTENT).parent / "SOURCES.md").is_file()


@pytest.mark.usefixtures("one_thread")
def test_without_weights_it_explains_and_shows_gatys(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(registry, "PRETRAINED", {})
    out = tmp_path / "demo.jpg"
    assert demo.main(["-o", str(out), "--gatys-size", "96", "--gatys-steps", "8"]) == 0
    captured = capsys.readouterr()
    assert "no trained IEContraAST weights" in captured.err and "iecast train" in captured.err
    assert "--official" in captured.err and "Gatys" in captured.out and str(out.resolve()) in captured.out

    photo_image = load_image(demo.sample_path(demo.SAMPLE_CONTENT))
    result_image = load_image(out)
    assert max(result_image.size) == 96
    assert result_image.width / result_image.height == pytest.approx(photo_image.width / photo_image.height, rel=0.05)
    photo = pil_to_tensor(photo_image.resize(result_image.size, Image.BICUBIC))
    painting_image = load_image(demo.sample_path(demo.SAMPLE_STYLE))
    painting_image.thumbnail((96, 96))
    encoder = weights.load_encoder(weights.DEFAULT_ENCODER).eval()
    with torch.no_grad():
        f_result, f_photo, f_painting = (encoder(x) for x in
                                         (pil_to_tensor(result_image), photo, pil_to_tensor(painting_image)))
    # the result has moved well towards the painting's feature statistics ...
    assert style_loss(f_result, f_painting) < 0.7 * style_loss(f_photo, f_painting)
    # ... and is still that photo: far nearer to it than to the painting, pixel for pixel
    resized_painting = pil_to_tensor(painting_image.resize(result_image.size, Image.BICUBIC))
    result = pil_to_tensor(result_image)
    assert (result - photo).abs().mean() < 0.5 * (result - resized_painting).abs().mean()


def test_rejects_a_useless_gatys_size(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        demo.main(["-o", str(tmp_path / "x.jpg"), "--gatys-size", "4"])
    assert exc.value.code == 2 and "--gatys-size" in capsys.readouterr().err
    assert not (tmp_path / "x.jpg").exists()


def test_picks_registered_weights_found_offline(monkeypatch, _iecast_home):
    entry = PretrainedWeights(name="default", file_name="demo-test.safetensors", sha256=None, encoder="x",
                              description="test", licence="test", url="http://unreachable.invalid/w")
    monkeypatch.setattr(registry, "PRETRAINED", {"other": entry, "default": entry})
    assert demo.offline_weights() is None  # registered but not on disk: no download is attempted
    (_iecast_home / "demo-test.safetensors").write_bytes(b"x")
    name, path = demo.offline_weights()
    assert name == "default" and path == _iecast_home / "demo-test.safetensors"
