"""`iecast video --batch-size`: frames stylized a batch at a time come out as one at a time, in order, audio kept."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

av = pytest.importorskip("av")

from iecast.cli import main  # noqa: E402
from iecast.inference.stylizer import Stylizer  # noqa: E402
from test_video import make_video, probe  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "iecast" / "assets" / "samples"
FAST = ["--style-size", "32", "--quiet", "--precision", "fp32", "--device", "cpu"]

pytestmark = pytest.mark.usefixtures("one_thread")


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im, dtype=np.int16)


def test_frame_batches_give_the_same_frames(capsys, tmp_path, weights_file, monkeypatch):
    frames = tmp_path / "frames"
    frames.mkdir()
    with Image.open(SAMPLES / "classic_cars.jpg") as im:
        photo = im.convert("RGB").resize((96, 64))
    for i in range(5):  # a pan across the photo: every frame different
        photo.crop((i * 4, 0, i * 4 + 80, 64)).save(frames / f"f{i:03d}.png")
    batches = []
    original = Stylizer.stylize_prepared
    monkeypatch.setattr(Stylizer, "stylize_prepared",
                        lambda self, x, *a, **k: batches.append(x.shape[0]) or original(self, x, *a, **k))
    for batch in (1, 2):
        code = main(["video", str(frames), "-s", str(SAMPLES / "starry_night.jpg"), "-o", str(tmp_path / f"out{batch}"),
                     "--weights", str(weights_file), "--batch-size", str(batch), *FAST])
        assert code == 0, capsys.readouterr().err
    assert batches == [1] * 5 + [2, 2, 1]  # five frames in batches of 2, 2 and 1
    names = sorted(p.name for p in (tmp_path / "out1").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "out2").iterdir()) and len(names) == 5
    for name in names:
        assert np.abs(pixels(tmp_path / "out1" / name) - pixels(tmp_path / "out2" / name)).max() <= 1, name


def test_a_video_in_batches_keeps_frames_rate_and_audio(capsys, tmp_path, weights_file):
    clip = make_video(tmp_path / "clip.mp4", seconds=1)
    out = tmp_path / "styled.mp4"
    code = main(["video", str(clip), "-s", str(SAMPLES / "starry_night.jpg"), "-o", str(out),
                 "--weights", str(weights_file), "--batch-size", "4", *FAST])
    assert code == 0, capsys.readouterr().err
    frames, rate, kinds = probe(out)
    assert (frames, rate, sorted(kinds)) == (probe(clip)[0], Fraction(10), ["audio", "video"])
    with av.open(str(out)) as container:
        assert abs(float(container.duration) / 1e6 - 1) < 0.5
