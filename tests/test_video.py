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
