"""`iecast video --temporal`: flow-guided blending of features and outputs between adjacent frames."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("cv2")

from iecast.evaluation import metrics  # noqa: E402
from iecast.errors import IecastError  # noqa: E402
from iecast.inference.temporal import TemporalBlender, reliable, warp  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
HEIGHT, WIDTH = 48, 64


def texture(seed: int = 0, size: tuple[int, int] = (HEIGHT, WIDTH + 24)) -> np.ndarray:
    """A smooth random RGB texture (uint8), wider than a frame so frames can pan across it."""
    noise = torch.rand(1, 3, size[0] // 4, size[1] // 4, generator=torch.Generator().manual_seed(seed))
    smooth = torch.nn.functional.interpolate(noise, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
    return (smooth[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def write_frames(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"f{i:03d}.png")
    return folder


def panning(steps: int = 5, speed: int = 3) -> list[np.ndarray]:
    scene = texture()
    return [scene[:, i * speed:i * speed + WIDTH] for i in range(steps)]


def read_frames(folder: Path) -> torch.Tensor:
    files = sorted(folder.glob("frame_*.png"))
    return torch.stack([torch.from_numpy(np.array(Image.open(f))).permute(2, 0, 1).float() / 255 for f in files])


@pytest.fixture(scope="module")
def stylizer():
    """The shipped model (a random one paints near-flat frames, which hide flicker); tiny frames keep it fast."""
    from iecast.inference.stylizer import Stylizer

    return Stylizer.from_pretrained("default", precision="fp32")


@pytest.fixture(scope="module")
def style(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("style") / "style.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
    return path


def stylize_both(stylizer, source: Path, style: Path, tmp_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    from iecast.inference.video import stylize_video

    outs = []
    for temporal in (False, True):
        out = tmp_path / f"out_{temporal}"
        stylize_video(stylizer, source, style, out, style_size=32, progress=False, temporal=temporal)
        outs.append(read_frames(out))
    return outs[0], outs[1]


# ----------------------------------------------------------------------------- the pieces

def test_warp_follows_whole_pixel_flow():
    image = torch.arange(2 * 6 * 8, dtype=torch.float32).view(1, 2, 6, 8)
    flow = torch.zeros(6, 8, 2)
    flow[..., 0] = 2  # sample two columns to the right
    shifted = warp(image, flow)
    assert torch.allclose(shifted[..., :6], image[..., 2:])
    assert torch.allclose(shifted[..., 6:], image[..., 7:8].expand(-1, -1, -1, 2))  # border replicated
    assert torch.allclose(warp(image, torch.zeros(6, 8, 2)), image)


def test_reliability_needs_agreeing_flows_and_a_target_inside():
    backward = torch.zeros(10, 12, 2)
    backward[..., 0] = -3  # current pixel x came from x - 3
    forward = -backward
    mask = reliable(backward, forward)
    assert mask[:, 3:].eq(1).all() and mask[:, :3].eq(0).all()  # the first columns came from outside
    assert reliable(backward, torch.zeros_like(forward)).eq(0).all()  # flows that disagree by 3 px
    assert reliable(torch.zeros(10, 12, 2), torch.zeros(10, 12, 2)).eq(1).all()


def test_weights_are_checked():
    with pytest.raises(IecastError, match="feature_weight"):
        TemporalBlender(feature_weight=1.0)
    with pytest.raises(IecastError, match="pixel_weight"):
        TemporalBlender(pixel_weight=-0.1)


def test_missing_opencv_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(IecastError, match=r"--temporal needs OpenCV.*pip install 'iecast\[eval\]'") as info:
        TemporalBlender()
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- on videos

def test_static_clip_gives_the_per_frame_result(tmp_path, stylizer, style):
    frame = texture()[:, :WIDTH]
    source = write_frames(tmp_path / "static", [frame] * 4)
    plain, temporal = stylize_both(stylizer, source, style, tmp_path)
    assert plain.shape == temporal.shape == (4, 3, HEIGHT, WIDTH)
    assert (plain - temporal).abs().max() <= 1 / 255 + 1e-6  # at most one grey level (rounding)
    assert (plain[1:] - plain[0]).abs().max() == 0


def test_temporal_changes_later_frames_and_steadies_them(tmp_path, stylizer, style):
    frames = panning()
    source = write_frames(tmp_path / "pan", frames)
    plain, temporal = stylize_both(stylizer, source, style, tmp_path)
    assert torch.equal(plain[0], temporal[0])  # nothing to carry over into the first frame
    change = (plain[1:] - temporal[1:]).abs().mean(dim=(1, 2, 3))
    assert (change > 2 / 255).all(), change
    assert 0 <= temporal.min() and temporal.max() <= 1
    raw = torch.stack([torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in frames])
    plain_error, temporal_error = metrics.warping_error(plain, raw), metrics.warping_error(temporal, raw)
    assert temporal_error < 0.85 * plain_error, (temporal_error, plain_error)  # measured: 0.70x
    # Not washed out. A noise style on 48x64 frames is a harsh case (measured: pixel std -17%, style
    # loss +1%, content loss +6%); the benchmark's paintings at 256 px are in docs/performance.md.
    assert temporal[1:].std(dim=(2, 3)).mean() > 0.75 * plain[1:].std(dim=(2, 3)).mean()
    from iecast.inference.stylizer import load_as_tensor
    from iecast.weights import load_encoder

    judge = load_encoder("vgg16-imagenet-offline-normalised")
    painting = load_as_tensor(style)

    def mean_losses(outs):
        return (sum(metrics.style_loss(o[None], painting, judge) for o in outs[1:]) / 4,
                sum(metrics.content_loss(o[None], r[None], judge) for o, r in zip(outs[1:], raw[1:])) / 4)

    (plain_style, plain_content), (temporal_style, temporal_content) = mean_losses(plain), mean_losses(temporal)
    assert temporal_style < 1.1 * plain_style and temporal_content < 1.15 * plain_content


def test_strength_sets_the_share(tmp_path, stylizer, style):
    from iecast.inference.video import stylize_video

    source = write_frames(tmp_path / "pan", panning(3))
    outs = {}
    for i, strength in enumerate((True, 0.7, 0.4)):
        stylize_video(stylizer, source, style, tmp_path / f"out{i}", style_size=32, progress=False,
                      temporal=strength)
        outs[strength] = read_frames(tmp_path / f"out{i}")
    assert torch.equal(outs[True], outs[0.7])  # True is the default strength, 0.7
    assert not torch.equal(outs[0.7][2], outs[0.4][2])
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(IecastError, match=r"temporal strength must be in \(0, 1\)"):
            stylize_video(stylizer, source, style, tmp_path / "bad", style_size=32, progress=False, temporal=bad)


def test_a_cut_is_painted_fresh(tmp_path, stylizer, style):
    """After a scene cut nothing is reliable, so the new shot gets its own per-frame stylization."""
    first, second = texture(0)[:, :WIDTH], texture(7)[:, :WIDTH]
    source = write_frames(tmp_path / "cut", [first, first, second])
    plain, temporal = stylize_both(stylizer, source, style, tmp_path)
    assert (plain[2] - temporal[2]).abs().mean() < 0.1 * (plain[2] - plain[1]).abs().mean()


def test_cli_flag(capsys, tmp_path, style):
    from iecast.cli import main

    source = write_frames(tmp_path / "pan", panning(3))
    outputs = []
    for flag in ([], ["--temporal"]):
        out = tmp_path / f"out{len(flag)}"
        code = main(["video", str(source), "-s", str(style), "-o", str(out),
                     "--style-size", "32", "--precision", "fp32", "--quiet", *flag])
        assert code == 0, capsys.readouterr().err
        outputs.append(read_frames(out))
    assert outputs[0].shape == outputs[1].shape == (3, 3, HEIGHT, WIDTH)
    assert torch.equal(outputs[0][0], outputs[1][0]) and not torch.equal(outputs[0][2], outputs[1][2])
    code = main(["video", str(source), "-s", str(style), "-o", str(tmp_path / "bad"), "--temporal", "2", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and err.strip().splitlines() == ["iecast: error: temporal strength must be in (0, 1) (got 2.0)"]
    with pytest.raises(SystemExit):
        main(["video", "--help"])
    assert "--temporal [STRENGTH]" in capsys.readouterr().out


def test_benchmark_path_matches_stylize_video(tmp_path, stylizer, style):
    """benchmarks/temporal_video.py shares each frame's encoding between both modes; its temporal
    frames must be what `stylize_video(temporal=...)` writes."""
    from iecast.inference.video import stylize_video

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    try:
        import temporal_video
    finally:
        sys.path.pop(0)
    frames = panning(3)
    source = write_frames(tmp_path / "pan", frames)
    tensors = [torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255 for f in frames]
    from iecast.inference.stylizer import resize_shorter_side

    prepared = stylizer.prepare_style(resize_shorter_side(load_style(style), 32), None)
    plain, (temporal,) = temporal_video.stylize_clip(stylizer, tensors, prepared, [(0.5, 0.0, 0.0)])
    stylize_video(stylizer, source, prepared, tmp_path / "out", progress=False, temporal=0.5)
    written = read_frames(tmp_path / "out")
    assert (torch.cat(temporal) - written).abs().max() <= 1 / 255 + 1e-6


def load_style(path: Path) -> torch.Tensor:
    from iecast.inference.stylizer import load_as_tensor

    return load_as_tensor(path)


def test_temporal_frames_get_a_lower_pixel_limit(tmp_path, stylizer, style):
    """The carried features and flow cost memory: with --temporal a frame may have TEMPORAL_PIXEL_SHARE
    of max_pixels; the same clip runs per frame, and is refused with --temporal, without output."""
    from iecast.inference.temporal import TEMPORAL_PIXEL_SHARE, temporal_pixel_limit
    from iecast.inference.video import stylize_video

    assert temporal_pixel_limit(20_000_000) == 3840 * 2160 and temporal_pixel_limit(None) is None
    source = write_frames(tmp_path / "pan", panning(2))
    limit = 6000  # frames of 48x64 = 3072 pixels: within 6000, over 6000 * 0.41
    assert limit * TEMPORAL_PIXEL_SHARE < HEIGHT * WIDTH <= limit
    stylize_video(stylizer, source, style, tmp_path / "plain", style_size=32, progress=False, max_pixels=limit)
    assert len(list((tmp_path / "plain").iterdir())) == 2
    with pytest.raises(IecastError, match=r"frames: 64x48 .* over the --temporal limit \(41% of --max-pixels") as info:
        stylize_video(stylizer, source, style, tmp_path / "carried", style_size=32, progress=False,
                      max_pixels=limit, temporal=True)
    assert "\n" not in str(info.value) and not (tmp_path / "carried").exists()
