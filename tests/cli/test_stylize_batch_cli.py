"""`iecast stylize --batch-size`: a folder run in batches writes what the one-at-a-time run writes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iecast.cli import main
from iecast.inference.stylizer import Stylizer

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "iecast" / "assets" / "samples"
FAST = ["--style-size", "48", "--quiet", "--precision", "fp32", "--device", "cpu", "--ext", "png"]

pytestmark = pytest.mark.usefixtures("one_thread")


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def folder(tmp_path) -> Path:
    """Three photos of 80x64, one of 64x72 (its own group) and one file that is not an image."""
    folder = tmp_path / "contents"
    folder.mkdir()
    for i, name in enumerate(["classic_cars.jpg", "water_lilies.jpg", "great_wave.jpg"]):
        with Image.open(SAMPLES / name) as im:
            im.convert("RGB").resize((80, 64)).save(folder / f"{chr(97 + 2 * i)}_{Path(name).stem}.png")
    with Image.open(SAMPLES / "classic_cars.jpg") as im:
        im.convert("RGB").resize((64, 72)).save(folder / "b_tall.png")
    (folder / "d_broken.jpg").write_text("not an image")
    return folder


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im, dtype=np.int16)


def test_batches_write_the_same_files_and_report_bad_images(capsys, tmp_path, folder, weights_file, monkeypatch):
    sizes = []
    original = Stylizer.stylize_prepared

    def spy(self, content, *args, **kwargs):
        sizes.append(tuple(content.shape))
        return original(self, content, *args, **kwargs)

    monkeypatch.setattr(Stylizer, "stylize_prepared", spy)
    style = SAMPLES / "starry_night.jpg"
    outputs = {}
    for batch in (1, 2):
        sizes.clear()
        out = tmp_path / f"out{batch}"
        code, stdout, err = run(capsys, "stylize", "-c", folder, "-s", style, "-o", out, "--weights", weights_file,
                                "--batch-size", batch, *FAST)
        assert code == 1 and "Traceback" not in err
        lines = err.strip().splitlines()
        assert any("d_broken.jpg" in line and "not a readable image" in line for line in lines)
        assert "1 of 5" in lines[-1] and "d_broken.jpg" in lines[-1] and "4 written" in lines[-1]
        outputs[batch] = sorted(p.name for p in out.iterdir())
        assert sorted(Path(p).name for p in stdout.split()) == outputs[batch]
        assert max(shape[0] for shape in sizes) == batch  # the 80x64 photos did run two at a time
    assert outputs[1] == outputs[2] and len(outputs[1]) == 4
    for name in outputs[1]:
        assert np.abs(pixels(tmp_path / "out1" / name) - pixels(tmp_path / "out2" / name)).max() <= 1, name


def test_batch_size_must_be_positive(capsys, tmp_path, folder, weights_file):
    code, _, err = run(capsys, "stylize", "-c", folder, "-s", SAMPLES / "starry_night.jpg", "-o", tmp_path / "out",
                       "--weights", weights_file, "--batch-size", "0", *FAST)
    assert code == 1 and "--batch-size must be at least 1" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
