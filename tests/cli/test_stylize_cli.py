"""`iecast stylize` end to end: inputs (files, folders, globs), naming, formats, and every kind
of bad input as one line on stderr, exit status 1 and no output file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from iecast.cli import main
from iecast.inference.color import rgb_to_ycbcr
from iecast.images import fit_within, pil_to_tensor
from image_files import png_header_only

FAST = ["--style-size", "32", "--quiet", "--precision", "fp32"]


pytestmark = pytest.mark.usefixtures("one_thread")


def noise_image(path: Path, size=(40, 32), mode="RGB", seed=0) -> Path:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr, "RGB").convert(mode).save(path)
    return path


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    (tmp_path / "contents").mkdir()
    (tmp_path / "styles").mkdir()
    return {
        "c1": noise_image(tmp_path / "contents" / "alpha.jpg", (40, 32), seed=1),
        "c2": noise_image(tmp_path / "contents" / "beta.png", (33, 37), seed=2),
        "s1": noise_image(tmp_path / "styles" / "red.png", (32, 32), seed=3),
        "s2": noise_image(tmp_path / "styles" / "blue.png", (48, 32), seed=4),
        "out": tmp_path / "out",
    }


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_single_pair_to_a_file_keeps_size_and_format(capsys, files, weights_file):
    out = files["out"] / "result.webp"
    code, stdout, err = run(capsys, "stylize", "-c", files["c2"], "-s", files["s1"], "-o", out,
                            "--weights", weights_file, *FAST)
    assert code == 0, err
    assert stdout.strip() == str(out)
    with Image.open(out) as im:
        assert im.format == "WEBP" and im.size == (33, 37)
    assert listing(files["out"]) == ["result.webp"]  # no temporary files left


def test_folders_and_globs_give_all_pairs(capsys, files, weights_file):
    code, stdout, err = run(capsys, "stylize", "-c", files["c1"].parent, "-s", str(files["s1"].parent / "*.png"),
                            "-o", files["out"], "--weights", weights_file, *FAST)
    assert code == 0, err
    assert listing(files["out"]) == ["alpha_stylized_blue.jpg", "alpha_stylized_red.jpg",
                                     "beta_stylized_blue.png", "beta_stylized_red.png"]
    assert len(stdout.splitlines()) == 4


def test_blend_and_masks_give_one_result_per_content(capsys, files, weights_file, tmp_path):
    code, _, err = run(capsys, "stylize", "-c", files["c1"], "-s", files["s1"], files["s2"], "-o", files["out"],
                       "--style-weights", "1", "3", "--ext", "png", "--weights", weights_file, *FAST)
    assert code == 0
    assert "normalised" in err and err.startswith("iecast: warning:")
    assert listing(files["out"]) == ["alpha_stylized_red+blue.png"]
    mask = tmp_path / "mask.png"
    Image.new("L", (20, 16), 90).save(mask)  # wrong size and not binary: fixed up with warnings
    code, _, err = run(capsys, "stylize", "-c", files["c1"], "-s", files["s1"], "-o", tmp_path / "m.png",
                       "--mask", mask, "--weights", weights_file, *FAST)
    assert code == 0, err
    assert "resized" in err and "thresholded" in err
    assert Image.open(tmp_path / "m.png").size == (40, 32)


def test_exif_rotation_is_applied(capsys, tmp_path, weights_file):
    """A 40x24 picture stored with EXIF orientation 6 is displayed 24x40, red on top."""
    arr = np.zeros((24, 40, 3), np.uint8)
    arr[:, :20] = (220, 40, 40)  # left half red -> top after rotating 90 degrees clockwise
    arr[:, 20:] = (40, 40, 220)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(arr).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    out = tmp_path / "out.png"
    code, _, err = run(capsys, "stylize", "-c", tmp_path / "rotated.jpg", "-s", tmp_path / "rotated.jpg", "-o", out,
                       "--preserve-color", "luminance", "--weights", weights_file, *FAST)
    assert code == 0, err
    result = Image.open(out)
    assert result.size == (24, 40)
    _, cb, cr = rgb_to_ycbcr(pil_to_tensor(result))[0]
    assert cr[:16].mean() > 0.25 and cb[:16].mean() < -0.05  # red on top
    assert cb[24:].mean() > 0.25 and cr[24:].mean() < 0  # blue below


@pytest.mark.parametrize("mode", ["CMYK", "RGBA", "P", "I;16", "L"])
def test_unusual_image_modes_work(capsys, tmp_path, weights_file, mode):
    path = tmp_path / ("in.jpg" if mode == "CMYK" else "in.png")
    if mode == "I;16":
        arr = (np.random.default_rng(0).integers(0, 65536, (32, 40))).astype(np.uint16)
        Image.frombytes("I;16", (40, 32), arr.astype("<u2").tobytes()).save(path)
    else:
        noise_image(path, (40, 32), mode)
    assert Image.open(path).mode == mode
    code, _, err = run(capsys, "stylize", "-c", path, "-s", path, "-o", tmp_path / "out.png",
                       "--weights", weights_file, *FAST)
    assert code == 0, err
    assert Image.open(tmp_path / "out.png").size == (40, 32)


def bad_inputs(tmp_path: Path) -> dict[str, tuple[list, str]]:
    good = noise_image(tmp_path / "good.png", (32, 32))
    (tmp_path / "empty_folder").mkdir()
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image at all")
    full = noise_image(tmp_path / "full.jpg", (64, 64)).read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(full[: len(full) // 3])
    Image.new("RGB", (1, 1)).save(tmp_path / "tiny.png")
    png_header_only(tmp_path / "bomb.png", 100_000, 100_000)
    return {
        "missing": (["-c", tmp_path / "nope.jpg", "-s", good], "no such file"),
        "missing style": (["-c", good, "-s", tmp_path / "nope.jpg"], "no such file"),
        "empty folder": (["-c", tmp_path / "empty_folder", "-s", good], "no images"),
        "glob matches nothing": (["-c", str(tmp_path / "*.tif"), "-s", good], "matches no"),
        "zero bytes": (["-c", tmp_path / "zero.jpg", "-s", good], "empty file"),
        "not an image": (["-c", tmp_path / "text.jpg", "-s", good], "not a readable image"),
        "truncated": (["-c", tmp_path / "truncated.jpg", "-s", good], "truncated"),
        "1x1": (["-c", tmp_path / "tiny.png", "-s", good], "too small"),
        "bomb": (["-c", tmp_path / "bomb.png", "-s", good], "pixel limit"),
        "limit": (["-c", good, "-s", good, "--max-pixels", "1000"], "pixel limit"),
        "alpha": (["-c", good, "-s", good, "--alpha", "1.5"], "alpha"),
        "weights count": (["-c", good, "-s", good, "--style-weights", "1", "2"], "2 style weights for 1 styles"),
        "mask count": (["-c", good, "-s", good, "--mask", good, good], "one mask per style"),
        "format": (["-c", good, "-s", good, "-o", tmp_path / "out" / "x.gif"], "unsupported output format"),
    }


CASES = ["missing", "missing style", "empty folder", "glob matches nothing", "zero bytes", "not an image",
         "truncated", "1x1", "bomb", "limit", "alpha", "weights count", "mask count", "format"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_leaves_nothing(capsys, tmp_path, weights_file, case):
    argv, expected = bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    if "-o" not in argv:
        argv = argv + ["-o", out / "result.png"]
    code, stdout, err = run(capsys, "stylize", *argv, "--weights", weights_file, *FAST)
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and err.startswith("iecast: error:"), err
    assert expected in err
    assert listing(out) == []


def test_missing_default_weights_say_how_to_get_them(capsys, files, monkeypatch):
    from iecast.weights import registry

    monkeypatch.setattr(registry, "PRETRAINED", {})
    code, _, err = run(capsys, "stylize", "-c", files["c1"], "-s", files["s1"], "-o", files["out"])
    assert code == 1 and "no trained iecast weights" in err and "iecast train" in err
    assert listing(files["out"]) == []


def test_official_folder(capsys, tmp_path, files):
    from reference import ReferenceTransformer, reference_decoder, reference_vgg_normalised, small_init_

    torch.manual_seed(1)
    for name, module in (("vgg_normalised.pth", reference_vgg_normalised()),
                         ("decoder_iter_160000.pth", reference_decoder()),
                         ("transformer_iter_160000.pth", ReferenceTransformer())):
        small_init_(module)
        torch.save(module.state_dict(), tmp_path / name)
    out = tmp_path / "official.png"
    code, _, err = run(capsys, "stylize", "-c", files["c1"], "-s", files["s1"], "-o", out, "--official", tmp_path,
                       *FAST)
    assert code == 0, err
    assert Image.open(out).size == (40, 32)
    code, _, err = run(capsys, "stylize", "-c", files["c1"], "-s", files["s1"], "-o", out, "--official",
                       tmp_path / "nowhere", *FAST)
    assert code == 1 and "no such folder" in err


def test_fit_within_downscales_keeps_aspect_and_floors_the_short_side():
    wide = Image.new("RGB", (400, 100), (10, 20, 30))
    assert fit_within(wide, 200).size == (200, 50)
    assert fit_within(wide, 800) is wide  # never upscales
    assert fit_within(wide, None) is wide
    strip = Image.new("RGB", (1000, 10))
    assert fit_within(strip, 100).size == (100, 1)
    assert fit_within(strip, 100, min_side=16).size == (100, 16)


def test_compile_flag_reaches_the_stylizer(files, tmp_path, monkeypatch):
    """`--compile` builds the stylizer with compile=True (the compiled path itself is tested in
    test_precision); without the flag it stays eager."""
    from iecast.inference.stylizer import Stylizer

    seen = []

    def fake_from_pretrained(name, device="auto", precision="auto", compile=False):
        seen.append(compile)
        raise SystemExit(3)  # stop before any stylization

    monkeypatch.setattr(Stylizer, "from_pretrained", staticmethod(fake_from_pretrained))
    args = ["stylize", "-c", str(files["c1"]), "-s", str(files["s1"]), "-o", str(tmp_path / "o.png")]
    for extra in (["--compile"], []):
        with pytest.raises(SystemExit):
            main(args + extra)
    assert seen == [True, False]
