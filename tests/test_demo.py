"""`make demo`: the bundled samples exist, and with no trained weights the demo says how to get
them and writes nothing."""
from __future__ import annotations

from PIL import Image

from iecast import demo, weights
from iecast.weights import PretrainedWeights


def test_bundled_samples_are_small_images():
    for name in (demo.SAMPLE_CONTENT, demo.SAMPLE_STYLE):
        with Image.open(demo.sample_path(name)) as im:
            assert max(im.size) <= 512 and im.mode == "RGB"
    assert (demo.sample_path(demo.SAMPLE_CONTENT).parent / "SOURCES.md").is_file()


def test_without_weights_it_explains_and_writes_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(weights, "PRETRAINED", {})
    out = tmp_path / "demo.jpg"
    assert demo.main(["-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "no trained iecast weights" in err and "iecast train" in err and "--official" in err
    assert not out.exists()


def test_picks_registered_weights_found_offline(monkeypatch, _iecast_home):
    entry = PretrainedWeights(name="default", file_name="demo-test.safetensors", sha256=None, encoder="x",
                              description="test", licence="test", url="http://unreachable.invalid/w")
    monkeypatch.setattr(weights, "PRETRAINED", {"other": entry, "default": entry})
    assert demo.offline_weights() is None  # registered but not on disk: no download is attempted
    (_iecast_home / "demo-test.safetensors").write_bytes(b"x")
    name, path = demo.offline_weights()
    assert name == "default" and path == _iecast_home / "demo-test.safetensors"
