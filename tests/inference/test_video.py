"""`iecast video`: frame count, frame rate and audio survive; frame folders in and out; bad videos."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

av = pytest.importorskip("av")

from iecast.cli import main  # noqa: E402

SECONDS, FPS, WIDTH, HEIGHT = 5, 10, 64, 48


pytestmark = pytest.mark.usefixtures("one_thread")


def make_video(path: Path, seconds: int = SECONDS, fps: int = FPS, audio: bool = True) -> Path:
    """A synthetic H.264 clip (a moving bar) with a 440 Hz AAC tone, written with PyAV."""
    out = av.open(str(path), "w")
    video = out.add_stream("libx264", rate=fps)
    video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    sound = out.add_stream("aac", rate=44100) if audio else None
    if sound is not None:
        sound.layout = "mono"
    for i in range(seconds * fps):
        frame = np.full((HEIGHT, WIDTH, 3), (40, 90, 160), np.uint8)
        frame[:, (i * 3) % WIDTH:(i * 3) % WIDTH + 8] = (250, 220, 30)
        vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
        vf.pts = i
        for packet in video.encode(vf):
            out.mux(packet)
    if sound is not None:
        rate, block = 44100, 1024
        for start in range(0, seconds * rate, block):
            tone = np.sin(2 * np.pi * 440 * np.arange(start, start + block) / rate).astype(np.float32)[None]
            af = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            af.sample_rate, af.pts = rate, start
            for packet in sound.encode(af):
                out.mux(packet)
        for packet in sound.encode(None):
            out.mux(packet)
    for packet in video.encode(None):
        out.mux(packet)
    out.close()
    return path


def probe(path: Path) -> tuple[int, Fraction, list[str]]:
    with av.open(str(path)) as container:
        kinds = [s.type for s in container.streams]
        rate = container.streams.video[0].average_rate
        frames = sum(1 for _ in container.decode(video=0))
    return frames, rate, kinds


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4")


@pytest.fixture(scope="module")
def style(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("style") / "style.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
    return path


def test_video_keeps_frames_rate_and_audio(capsys, tmp_path, clip, style, weights_file):
    assert probe(clip) == (SECONDS * FPS, Fraction(FPS), ["video", "audio"])
    out = tmp_path / "styled.mp4"
    code = main(["video", str(clip), "-s", str(style), "-o", str(out), "--weights", str(weights_file),
                 "--style-size", "32", "--quiet"])
    assert code == 0, capsys.readouterr().err
    frames, rate, kinds = probe(out)
    assert frames == SECONDS * FPS and rate == FPS
    assert sorted(kinds) == ["audio", "video"]
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
        assert abs(float(container.duration) / 1e6 - SECONDS) < 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["styled.mp4"]  # no temporary file left


def test_frame_folders_in_and_out(capsys, tmp_path, style, weights_file):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        Image.new("RGB", (36, 28), (30 * i, 100, 200)).save(frames / f"f{i:03d}.jpg")
    out = tmp_path / "styled_frames"
    code = main(["video", str(frames), "-s", str(style), "-o", str(out), "--weights", str(weights_file),
                 "--style-size", "32", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["frame_000001.png", "frame_000002.png", "frame_000003.png"]
    assert Image.open(out / "frame_000001.png").size == (36, 28)
    video = tmp_path / "from_frames.mkv"
    code = main(["video", str(frames), "-s", str(style), "-o", str(video), "--fps", "12", "--weights",
                 str(weights_file), "--style-size", "32", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert probe(video) == (3, Fraction(12), ["video"])


@pytest.mark.parametrize("case", ["garbage", "empty", "missing", "no frames folder"])
def test_unreadable_video_is_one_line(capsys, tmp_path, style, weights_file, case):
    source = {"garbage": tmp_path / "bad.mp4", "empty": tmp_path / "empty.mp4", "missing": tmp_path / "nope.mp4",
              "no frames folder": tmp_path / "folder"}[case]
    if case == "garbage":
        source.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    elif case == "empty":
        source.write_bytes(b"")
    elif case == "no frames folder":
        source.mkdir()
    out = tmp_path / "out" / "styled.mp4"
    code = main(["video", str(source), "-s", str(style), "-o", str(out), "--weights", str(weights_file),
                 "--style-size", "32", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and err.startswith("iecast: error:"), err
    assert not out.parent.exists() or not any(out.parent.iterdir())


# ----------------------------------------------------------------------------- issue 22: limits, truncation, signals

@pytest.fixture(scope="module")
def short_clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("short") / "short.mp4", seconds=1, audio=False)


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = main(["video", *args, "--style-size", "32", "--quiet", "--precision", "fp32"])
    return code, capsys.readouterr().err


def test_max_pixels_applies_to_video_files(capsys, tmp_path, short_clip, style, weights_file):
    out = tmp_path / "out" / "styled.mp4"
    code, err = run_cli(capsys, str(short_clip), "-s", str(style), "-o", str(out), "--weights", str(weights_file),
                        "--max-pixels", str(WIDTH * HEIGHT - 1))
    assert code == 1
    assert err.startswith("iecast: error:") and len(err.strip().splitlines()) == 1, err
    assert f"{WIDTH}x{HEIGHT}" in err and "pixel limit" in err
    assert not out.parent.exists() or not any(out.parent.iterdir())
    code, err = run_cli(capsys, str(short_clip), "-s", str(style), "-o", str(out), "--weights", str(weights_file),
                        "--max-pixels", str(WIDTH * HEIGHT))
    assert code == 0, err


def test_max_pixels_applies_after_content_size(capsys, tmp_path, short_clip, style, weights_file):
    out = tmp_path / "styled.mp4"
    code, err = run_cli(capsys, str(short_clip), "-s", str(style), "-o", str(out), "--weights", str(weights_file),
                        "--content-size", "480", "--max-pixels", str(WIDTH * HEIGHT * 4))
    assert code == 1 and "pixel limit" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() and not list(tmp_path.iterdir())


def truncated_mkv(folder: Path, keep: float = 0.6) -> tuple[Path, int, int]:
    """A real .mkv written by PyAV, cut to `keep` of its bytes; returns it, its declared and decodable frames."""
    whole = make_video(folder / "whole.mkv", seconds=3, audio=False)
    cut = folder / "cut.mkv"
    data = whole.read_bytes()
    cut.write_bytes(data[:int(len(data) * keep)])
    with av.open(str(cut)) as container:
        decodable = sum(1 for _ in container.decode(video=0))
    return cut, 3 * FPS, decodable


def test_truncated_video_says_it_ended_early(capsys, tmp_path, style, weights_file):
    cut, declared, decodable = truncated_mkv(tmp_path)
    assert 0 < decodable < declared
    out = tmp_path / "styled.mp4"
    code, err = run_cli(capsys, str(cut), "-s", str(style), "-o", str(out), "--weights", str(weights_file))
    assert code == 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("iecast: warning:"), err
    assert "ended early" in lines[0] and f"{decodable} of {declared} frames" in lines[0], err
    assert probe(out)[0] == decodable


def test_whole_mkv_gives_no_warning(capsys, tmp_path, style, weights_file):
    whole = make_video(tmp_path / "whole.mkv", seconds=1)
    code, err = run_cli(capsys, str(whole), "-s", str(style), "-o", str(tmp_path / "styled.mkv"),
                        "--weights", str(weights_file))
    assert code == 0 and err == "", err


def test_truncated_video_warns_in_python(tmp_path, style, weights_file):
    from iecast.inference.stylizer import IecastWarning, Stylizer
    from iecast.inference.video import stylize_video

    cut, declared, decodable = truncated_mkv(tmp_path)
    with pytest.warns(IecastWarning, match=f"ended early.*{decodable} of {declared} frames"):
        stylize_video(Stylizer.from_pretrained(weights_file, precision="fp32"), cut, style,
                      tmp_path / "frames", style_size=32, progress=False)
    assert len(list((tmp_path / "frames").glob("frame_*.png"))) == decodable


# Signals: a real `iecast video` process, a real signal.

IECAST = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "iecast"


def start_cli(source: Path, style: Path, out: Path, weights: Path):
    import os
    import subprocess
    import sys

    command = [str(IECAST)] if IECAST.exists() else [sys.executable, "-m", "iecast.cli"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([*command, "video", str(source), "-s", str(style), "-o", str(out), "--weights",
                             str(weights), "--style-size", "32", "--quiet", "--precision", "fp32"],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)


def wait_for(condition, process, timeout: float = 120.0) -> None:
    import time

    end = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"process ended early: {process.communicate()}"
        assert time.monotonic() < end, "timed out waiting for the run to start writing"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("long") / "long.mp4", seconds=60, audio=False)


def start_until_writing(tmp_path: Path, clip: Path, style: Path, weights: Path, kind: str):
    """`iecast video` into tmp_path, started and waited on until its output is partly written."""
    out = tmp_path / ("styled.mp4" if kind == "video" else "frames")
    process = start_cli(clip, style, out, weights)
    if kind == "video":
        wait_for(lambda: any(tmp_path.glob(".styled.*.tmp.mp4")), process)
    else:
        wait_for(lambda: (out / "frame_000002.png").exists(), process)
    return out, process


@pytest.mark.parametrize("kind", ["video", "frames"])
def test_sigterm_cleans_up_like_sigint(tmp_path, long_clip, style, weights_file, kind):
    import signal

    out, process = start_until_writing(tmp_path, long_clip, style, weights_file, kind)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert stderr.strip().splitlines() == ["iecast: terminated; the partial output was removed"], stderr
    assert stdout == ""
    assert list(tmp_path.rglob("*")) == []  # no partial video, no frames, not even the folder the run made


@pytest.mark.parametrize("kind", ["video", "frames"])
def test_leftovers_of_a_killed_run_are_removed_next_time(capsys, tmp_path, short_clip, long_clip, style, weights_file, kind):
    import signal

    out, process = start_until_writing(tmp_path, long_clip, style, weights_file, kind)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert any(p.name.startswith(".") for p in tmp_path.rglob("*"))  # SIGKILL cannot be cleaned up after
    code, err = run_cli(capsys, str(short_clip), "-s", str(style), "-o", str(out), "--weights", str(weights_file))
    assert code == 0, err
    names = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    if kind == "video":
        assert err == ""
        assert names == ["styled.mp4"], names
        assert probe(out)[0] == FPS
    else:
        assert "removed" in err and "interrupted run" in err, err
        assert names == ["frames"] + [f"frames/frame_{i:06d}.png" for i in range(1, FPS + 1)], names
