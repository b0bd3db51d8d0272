"""Hardening of `iecast stylize` and the Stylizer's inputs (issue 22, defects 1, 3 and 9):

- every image is checked against the pixel limits *after* each resize, before anything large is
  allocated (extreme aspect ratios, huge --content-size, elongated styles, masks);
- write failures (read-only folder, full disk, a parent that is a file) are one line, leave no
  partial file and are found before the stylization runs where they can be;
- folder runs finish the good images and report the bad ones; an output never replaces an input;
- the same style given twice in a blend stays two styles.

Large allocations are guarded: `F.interpolate` refuses to produce a big tensor during these tests,
so a check that comes too late fails the test instead of exhausting the machine's memory.
"""
from __future__ import annotations

import builtins
import errno
import os
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from iecast import IecastError
from iecast.cli import main
from iecast.images import MAX_PIXELS, MAX_STYLE_PIXELS

FAST = ["--style-size", "32", "--quiet", "--precision", "fp32"]
GUARD_ELEMENTS = 20_000_000  # the largest tensor F.interpolate may produce in these tests (80 MB of fp32)

pytestmark = pytest.mark.usefixtures("one_thread")


def noise_image(path: Path, size=(40, 32), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB").save(path)
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def files_in(folder: Path) -> list[str]:
    """Every file under `folder`, hidden ones included (temporary files must not be left)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("iecast: error:"), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(autouse=True)
def allocation_guard(monkeypatch):
    """Make a too-late size check fail the test instead of allocating gigabytes."""
    real = torch.nn.functional.interpolate

    def guarded(x, size=None, *args, **kwargs):
        if size is not None:
            h, w = (size, size) if isinstance(size, int) else size
            if x.shape[0] * x.shape[1] * h * w > GUARD_ELEMENTS:
                raise AssertionError(f"resize to {w}x{h} was attempted: the size check came too late")
        return real(x, size, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "interpolate", guarded)


@pytest.fixture
def no_stylizing(monkeypatch):
    """For failures that must be found before any work: building the model fails the test."""
    import iecast.cli.stylize as cli

    def refuse(_args):
        raise AssertionError("the model was loaded: the check should have come before any work")

    monkeypatch.setattr(cli, "build_stylizer", refuse)


# ---------------------------------------------------------------- 1: sizes after resizing

@pytest.fixture
def odd_sizes(tmp_path) -> dict[str, Path]:
    Image.new("RGB", (17, 6000), (90, 40, 160)).save(tmp_path / "tall_style.png")  # a ~1 KB file
    Image.new("RGB", (7000, 1), (200, 180, 20)).save(tmp_path / "line7000.png")
    Image.new("RGB", (70000, 1), (200, 180, 20)).save(tmp_path / "line70000.png")
    side = int(MAX_STYLE_PIXELS ** 0.5) + 1
    Image.new("RGB", (side, side), (20, 90, 30)).save(tmp_path / "big_style.png")
    noise_image(tmp_path / "content.png", (40, 32), seed=1)
    noise_image(tmp_path / "style.png", (32, 32), seed=2)
    Image.new("L", (100, 100), 255).save(tmp_path / "mask.png")
    return {p.stem: p for p in tmp_path.iterdir()}


SIZE_CASES = {
    # name: (arguments, text the error line must contain)
    "elongated style at the auto size": (["-c", "content", "-s", "tall_style", "--quiet"], ["17x6000", "style"]),
    "elongated style at 256": (["-c", "content", "-s", "tall_style", "--style-size", "256", "--quiet"],
                               ["17x6000", "256x90353"]),
    "7000x1 content at 256": (["-c", "line7000", "-s", "style", "--content-size", "256", *FAST],
                              ["7000x1", "1792000x256", "pixel limit"]),
    "70000x1 content at 256": (["-c", "line70000", "-s", "style", "--content-size", "256", *FAST],
                               ["70000x1", "pixel limit"]),
    "content size 100000": (["-c", "content", "-s", "style", "--content-size", "100000", *FAST],
                            ["40x32", "125000x100000", "pixel limit"]),
    "whole style over the style limit": (["-c", "content", "-s", "big_style", "--style-size", "0", "--quiet"],
                                         ["big_style", "style"]),
    "mask over --max-pixels": (["-c", "content", "-s", "style", "--mask", "mask", "--max-pixels", "5000", *FAST],
                               ["mask", "100x100", "pixel limit"]),
}


@pytest.mark.parametrize("case", list(SIZE_CASES))
def test_sizes_are_checked_after_resizing(capsys, tmp_path, odd_sizes, weights_file, case):
    argv, expected = SIZE_CASES[case]
    argv = [odd_sizes[a] if a in odd_sizes else a for a in argv]
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "stylize", *argv, "-o", out / "result.png", "--weights", weights_file)
    line = one_error_line(err)
    assert code == 1 and stdout == ""
    for text in expected:
        assert text in line
    assert files_in(out) == []


def test_the_library_checks_too(weights_file):
    """The server and video call the Stylizer directly: the checks live there."""
    from iecast.inference.stylizer import Stylizer, resize_shorter_side

    stylizer = Stylizer.from_pretrained(weights_file, device="cpu", precision="fp32")
    tall = Image.new("RGB", (17, 6000), (90, 40, 160))
    with pytest.raises(IecastError, match="17x6000"):
        stylizer.prepare_style(tall)  # 'auto': the model's training scale
    with pytest.raises(IecastError, match="17x6000"):
        stylizer.stylize(Image.new("RGB", (64, 48)), tall)
    with pytest.raises(IecastError, match="pixel limit"):
        stylizer.stylize(Image.new("RGB", (7000, 1)), Image.new("RGB", (32, 32)), content_size=256)
    with pytest.raises(IecastError, match="pixel limit"):
        resize_shorter_side(torch.zeros(1, 3, 1, 7000), 256)
    with pytest.raises(IecastError, match="pixel limit of 100000"):
        resize_shorter_side(torch.zeros(1, 3, 100, 100), 400, max_pixels=100_000)
    assert tuple(resize_shorter_side(torch.zeros(1, 3, 100, 100), 400, max_pixels=None).shape[-2:]) == (400, 400)
    small = resize_shorter_side(torch.rand(1, 3, 30, 40), 60)
    assert tuple(small.shape[-2:]) == (60, 80)
    prepared = stylizer.prepare_style(Image.new("RGB", (60, 30)), style_size=64)
    assert prepared.size == (64, 128)


def test_limits_have_one_home():
    import iecast.images as images
    import iecast.inference.stylizer as stylizer

    assert stylizer.MAX_PIXELS is images.MAX_PIXELS and stylizer.MAX_STYLE_PIXELS is images.MAX_STYLE_PIXELS
    assert MAX_STYLE_PIXELS < MAX_PIXELS
    assert not hasattr(images, "DEFAULT_MAX_PIXELS")


# ---------------------------------------------------------------- 3: write failures

class FakeReadOnly:
    """Everything under `root` refuses to be created or written, as on a read-only mount
    (root ignores permission bits, so a chmod would prove nothing in CI)."""

    def __init__(self, monkeypatch, root: Path, error: int = errno.EROFS) -> None:
        self.root, self.error = str(root.resolve()), error
        real_open, real_mkdir, real_os_open = builtins.open, os.mkdir, os.open

        def inside(path) -> bool:
            try:
                return os.path.abspath(os.fspath(path)).startswith(self.root + os.sep)
            except TypeError:
                return False

        def fail(path):
            raise OSError(self.error, os.strerror(self.error), os.fspath(path))

        def fake_open(file, mode="r", *args, **kwargs):
            if inside(file) and any(m in mode for m in "wax+"):
                fail(file)
            return real_open(file, mode, *args, **kwargs)

        def fake_os_open(path, flags, *args, **kwargs):
            if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                fail(path)
            return real_os_open(path, flags, *args, **kwargs)

        def fake_mkdir(path, *args, **kwargs):
            if inside(path):
                fail(path)
            return real_mkdir(path, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(os, "open", fake_os_open)
        monkeypatch.setattr(os, "mkdir", fake_mkdir)


@pytest.fixture
def pair(tmp_path) -> list:
    return ["-c", noise_image(tmp_path / "content.png", seed=1), "-s", noise_image(tmp_path / "style.png", seed=2)]


@pytest.mark.parametrize("target", ["result.png", "new/deeper/result.png", "folder"])
def test_read_only_destination_is_refused_before_work(capsys, tmp_path, pair, weights_file, monkeypatch,
                                                      no_stylizing, target):
    locked = tmp_path / "locked"
    locked.mkdir()
    FakeReadOnly(monkeypatch, locked)
    code, stdout, err = run(capsys, "stylize", *pair, "-o", locked / target, "--weights", weights_file, *FAST)
    line = one_error_line(err)
    assert code == 1 and "read-only" in line.lower() and str(locked) in line
    assert files_in(locked) == []


def test_full_disk_is_refused_before_work(capsys, tmp_path, pair, weights_file, monkeypatch, no_stylizing):
    full = tmp_path / "full"
    full.mkdir()
    FakeReadOnly(monkeypatch, full, errno.ENOSPC)
    code, _, err = run(capsys, "stylize", *pair, "-o", full / "result.png", "--weights", weights_file, *FAST)
    assert code == 1 and "no space left" in one_error_line(err).lower()
    assert files_in(full) == []


def test_disk_filling_up_while_saving_leaves_no_partial_file(capsys, tmp_path, pair, weights_file, monkeypatch):
    """The check passed, then the disk filled up: the save fails after writing part of the file."""
    def save_then_fill_up(self, fp, format=None, **params):
        with builtins.open(fp, "wb") as f:
            f.write(b"\x89PNG partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", save_then_fill_up)
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "stylize", *pair, "-o", out / "result.png", "--weights", weights_file, *FAST)
    line = one_error_line(err)
    assert code == 1 and "result.png" in line and "no space left" in line.lower()
    assert stdout == "" and files_in(out) == []


@pytest.mark.parametrize("target", ["notes.txt/result.png", "notes.txt/sub/result.png", "notes.txt/"])
def test_parent_that_is_a_file_is_refused_before_work(capsys, tmp_path, pair, weights_file, no_stylizing, target):
    (tmp_path / "notes.txt").write_text("keep me")
    code, _, err = run(capsys, "stylize", *pair, "-o", f"{tmp_path}{os.sep}{target}", "--weights", weights_file, *FAST)
    line = one_error_line(err)
    assert code == 1 and "notes.txt" in line and "not a folder" in line
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def mount_tmpfs(where: Path, options: str) -> bool:
    where.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    except OSError:
        return False
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A real 64 KB tmpfs where mounting is allowed (root, no container restriction), else skipped:
    the fakes above cover the same cases everywhere."""
    where = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    if os.geteuid() != 0 or not mount_tmpfs(where, "size=64k"):
        pytest.skip("cannot mount a tmpfs here")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def test_real_small_disk_and_read_only_mount(capsys, tmp_path, weights_file, small_disk):
    content = noise_image(tmp_path / "content.png", (400, 320), seed=3)  # its result is about 10 KB as PNG
    style = noise_image(tmp_path / "style.png", seed=4)
    (small_disk / "filler").write_bytes(b"x" * (64 - 4) * 1024)  # 4 KB left: the check passes, the result does not fit
    code, stdout, err = run(capsys, "stylize", "-c", content, "-s", style, "-o", small_disk / "r.png",
                            "--weights", weights_file, *FAST)
    assert code == 1 and "r.png" in err and "no space left" in one_error_line(err).lower()
    assert files_in(small_disk) == ["filler"]
    with (small_disk / "filler").open("ab", buffering=0) as f:  # now full: refused before any work
        with pytest.raises(OSError):
            while True:
                f.write(b"x" * 1024)
    code, _, err = run(capsys, "stylize", "-c", content, "-s", style, "-o", small_disk / "r.png",
                       "--weights", weights_file, *FAST)
    assert code == 1 and "cannot write to" in err and "no space left" in one_error_line(err).lower()
    (small_disk / "filler").unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    code, _, err = run(capsys, "stylize", "-c", style, "-s", style, "-o", small_disk / "r.png",
                       "--weights", weights_file, *FAST)
    assert code == 1 and "read-only" in one_error_line(err).lower()
    assert files_in(small_disk) == []


# ---------------------------------------------------------------- 9: folder runs, outputs over inputs

@pytest.fixture
def folder_with_bad_images(tmp_path) -> Path:
    folder = tmp_path / "contents"
    folder.mkdir()
    noise_image(folder / "a_good.png", (40, 32), seed=1)
    (folder / "b_broken.jpg").write_text("not an image")
    noise_image(folder / "c_good.jpg", (36, 36), seed=2)
    Image.new("RGB", (8, 8)).save(folder / "d_tiny.png")
    return folder


def test_folder_run_finishes_the_good_images(capsys, tmp_path, folder_with_bad_images, weights_file):
    style = noise_image(tmp_path / "style.png", seed=5)
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "stylize", "-c", folder_with_bad_images, "-s", style, "-o", out,
                            "--weights", weights_file, *FAST)
    assert code == 1 and "Traceback" not in err
    assert files_in(out) == ["a_good_stylized_style.png", "c_good_stylized_style.jpg"]
    assert Image.open(out / "c_good_stylized_style.jpg").size == (36, 36)
    assert sorted(Path(p).name for p in stdout.split()) == files_in(out)
    lines = err.strip().splitlines()
    assert all(line.startswith("iecast: error:") for line in lines)
    assert any("b_broken.jpg" in line and "not a readable image" in line for line in lines)
    assert any("d_tiny.png" in line and "too small" in line for line in lines)
    summary = lines[-1]
    assert "2 of 4" in summary and "b_broken.jpg" in summary and "d_tiny.png" in summary


def test_bad_style_in_a_folder_spares_the_other_styles(capsys, tmp_path, weights_file):
    styles = tmp_path / "styles"
    styles.mkdir()
    noise_image(styles / "good.png", seed=6)
    (styles / "empty.png").write_bytes(b"")
    content = noise_image(tmp_path / "content.png", seed=7)
    out = tmp_path / "out"
    for colour in ([], ["--preserve-color", "histogram"]):
        code, _, err = run(capsys, "stylize", "-c", content, "-s", styles, "-o", out, *colour,
                           "--weights", weights_file, *FAST)
        assert code == 1 and "Traceback" not in err
        assert files_in(out) == ["content_stylized_good.png"]
        assert sum("empty.png" in line and "empty file" in line for line in err.splitlines()) == 1
        assert "1 of 2" in err.strip().splitlines()[-1]


@pytest.mark.parametrize("which", ["content", "style"])
def test_output_over_an_input_is_refused(capsys, tmp_path, pair, weights_file, no_stylizing, which):
    target = Path(pair[1] if which == "content" else pair[3])
    before = target.read_bytes()
    code, _, err = run(capsys, "stylize", *pair, "-o", target, "--weights", weights_file, *FAST)
    line = one_error_line(err)
    assert code == 1 and target.name in line and "input" in line
    assert target.read_bytes() == before


def test_folder_rerun_into_itself_is_refused(capsys, tmp_path, weights_file, no_stylizing):
    photos = tmp_path / "photos"
    photos.mkdir()
    noise_image(photos / "x.png", seed=1)
    previous = noise_image(photos / "x_stylized_style.png", seed=2)  # the result of an earlier run
    before = previous.read_bytes()
    style = noise_image(tmp_path / "style.png", seed=3)
    code, _, err = run(capsys, "stylize", "-c", photos, "-s", style, "-o", photos, "--weights", weights_file, *FAST)
    assert code == 1 and "x_stylized_style.png" in one_error_line(err) and "input" in err
    assert previous.read_bytes() == before


def test_two_results_with_one_name_are_refused(capsys, tmp_path, weights_file, no_stylizing):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        noise_image(tmp_path / folder / "photo.png", seed=len(folder))
    style = noise_image(tmp_path / "style.png", seed=3)
    code, _, err = run(capsys, "stylize", "-c", tmp_path / "a", tmp_path / "b", "-s", style, "-o", tmp_path / "out",
                       "--weights", weights_file, *FAST)
    assert code == 1 and "photo_stylized_style.png" in one_error_line(err)


# ---------------------------------------------------------------- friction: one style twice

def test_same_style_twice_with_two_weights_is_two_styles(capsys, tmp_path, weights_file):
    content = noise_image(tmp_path / "content.png", seed=1)
    style = noise_image(tmp_path / "style.png", seed=2)
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "stylize", "-c", content, "-s", style, style, "--style-weights", "0.3", "0.7",
                            "-o", out, "--weights", weights_file, *FAST)
    assert code == 0 and err == ""
    assert files_in(out) == ["content_stylized_style+style.png"]
    single = tmp_path / "single.png"
    assert run(capsys, "stylize", "-c", content, "-s", style, "-o", single, "--weights", weights_file, *FAST)[0] == 0
    blended = np.asarray(Image.open(out / "content_stylized_style+style.png"), dtype=np.int16)
    assert np.abs(blended - np.asarray(Image.open(single), dtype=np.int16)).max() <= 2  # a blend of one style is that style
    mask = tmp_path / "mask.png"
    Image.new("L", (40, 32), 255).save(mask)
    code, _, err = run(capsys, "stylize", "-c", content, "-s", style, style, "--mask", mask, mask,
                       "-o", tmp_path / "masked.png", "--weights", weights_file, *FAST)
    assert code == 0, err


def test_running_out_of_memory_is_one_line_without_the_allocators_text(weights_file, monkeypatch):
    """What the limits let through can still exceed a small machine: the error names the image."""
    from iecast.inference.stylizer import Stylizer

    stylizer = Stylizer.from_pretrained(weights_file, device="cpu", precision="fp32")
    content, style = Image.new("RGB", (48, 40)), Image.new("RGB", (32, 32))
    allocator = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                 "you tried to allocate 5505024000 bytes. Error code 12 (Cannot allocate memory)")

    def fail(*_args, **_kwargs):
        raise RuntimeError(allocator)

    prepared = stylizer.prepare_style(style, style_size=32)
    monkeypatch.setattr(stylizer, "_encode", fail)
    for call, who in ((lambda: stylizer.stylize(content, prepared), "content"),
                      (lambda: stylizer.stylize(content, style, style_size=32), "style"),  # the style goes first
                      (lambda: stylizer.prepare_style(style), "style")):
        with pytest.raises(IecastError) as caught:
            call()
        message = str(caught.value)
        assert message.startswith(f"{who}: not enough memory") and "5.5 GB" in message and "\n" not in message
        assert "Allocator" not in message and "alloc_cpu" not in message  # no allocator internals
    monkeypatch.setattr(stylizer, "_encode", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):  # other errors are not disguised
        stylizer.stylize(content, prepared)
