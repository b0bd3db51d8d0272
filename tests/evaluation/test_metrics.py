"""Evaluation metrics against hand-computed values on tiny tensors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from iecast import IecastError
from iecast.evaluation import metrics
from iecast.models.vgg import TAPS


@pytest.fixture(scope="module")
def encoder():
    from iecast.weights import load_encoder

    return load_encoder("vgg16-imagenet-offline-normalised")


@pytest.fixture(scope="module")
def offline_distance():
    return metrics.OfflinePerceptualDistance()


def smooth_image(h: int = 48, w: int = 48, seed: int = 0) -> torch.Tensor:
    """A smooth random image (upsampled noise) so blur and flow behave like on photos."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, h // 8, w // 8, generator=g)
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


class IdentityTaps:
    """A stand-in encoder whose every tap is the image itself, for hand-computed loss checks."""

    source = "identity"

    def __call__(self, x, last="relu5_1"):
        return {t: x for t in TAPS}


def np_mvn(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    mean = flat.mean(axis=2, keepdims=True)
    var = flat.var(axis=2, ddof=1, keepdims=True)
    return ((flat - mean) / np.sqrt(var + 1e-5)).reshape(x.shape)


def test_identical_images_give_zero_losses_and_ssim_one(encoder):
    image = smooth_image()
    assert metrics.content_loss(image, image, encoder) == 0.0
    assert metrics.style_loss(image, image, encoder) == 0.0
    assert metrics.gram_style_loss(image, image, encoder) == 0.0
    assert metrics.ssim(image, image) == pytest.approx(1.0, abs=1e-12)


def test_image_losses_are_the_training_losses_on_encoder_features(encoder):
    """metrics.content_loss/style_loss are losses.content_loss/style_loss (one rule), not separate metrics."""
    from iecast.training import losses

    a, b = smooth_image(seed=3), smooth_image(seed=4)
    with torch.no_grad():
        fa, fb = encoder(a), encoder(b)
    assert metrics.content_loss(a, b, encoder) == float(losses.content_loss(fa, fb))
    assert metrics.style_loss(a, b, encoder) == float(losses.style_loss(fa, fb))


def test_different_images_give_positive_losses(encoder):
    a, b = smooth_image(seed=1), smooth_image(seed=2)
    assert metrics.content_loss(a, b, encoder) > 0.01
    assert metrics.style_loss(a, b, encoder) > 0.001
    assert metrics.gram_style_loss(a, b, encoder) > 0.001


def test_content_and_style_loss_match_hand_computation():
    a, b = torch.rand(1, 3, 6, 5, dtype=torch.float64), torch.rand(1, 3, 6, 5, dtype=torch.float64)
    an, bn = a.numpy(), b.numpy()
    expected_content = 2 * np.mean((np_mvn(an) - np_mvn(bn)) ** 2)  # relu4_1 + relu5_1, both the image here
    assert metrics.content_loss(a, b, IdentityTaps()) == pytest.approx(expected_content, rel=1e-9)
    fa, fb = an.reshape(3, -1), bn.reshape(3, -1)
    mean_term = np.mean((fa.mean(1) - fb.mean(1)) ** 2)
    std_term = np.mean((np.sqrt(fa.var(1, ddof=1) + 1e-5) - np.sqrt(fb.var(1, ddof=1) + 1e-5)) ** 2)
    assert metrics.style_loss(a, b, IdentityTaps()) == pytest.approx(5 * (mean_term + std_term), rel=1e-9)


def test_gram_matrix_and_gram_loss_by_hand():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]]]])  # (1, 2, 2, 2)
    expected = torch.tensor([[[30.0, 6.0], [6.0, 2.0]]]) / 4
    assert torch.equal(metrics.gram_matrix(x), expected)
    y = torch.zeros_like(x)
    loss = metrics.gram_style_loss(x, y, IdentityTaps())
    assert loss == pytest.approx(5 * float((expected ** 2).mean()))


def test_ssim_of_constant_images_is_the_luminance_term():
    a, b = torch.full((1, 3, 16, 16), 0.3), torch.full((1, 3, 16, 16), 0.5)
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * 0.3 * 0.5 + c1) / (0.3 ** 2 + 0.5 ** 2 + c1)
    assert metrics.ssim(a, b) == pytest.approx(expected, rel=1e-5)


def test_blur_lowers_ssim_and_more_blur_lowers_it_more():
    g = torch.Generator().manual_seed(3)
    image = torch.rand(1, 3, 48, 48, generator=g)

    def box_blur(x, k):
        return F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="reflect"), k, stride=1)

    light, heavy = metrics.ssim(box_blur(image, 3), image), metrics.ssim(box_blur(image, 7), image)
    assert heavy < light < 0.9


def test_ssim_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="same-size"):
        metrics.ssim(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 20))


def test_unit_normalize_gives_unit_channel_norms():
    x = torch.randn(2, 5, 3, 4)
    norms = metrics.unit_normalize(x).pow(2).sum(1).sqrt()
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-6)


def test_offline_distance_symmetric_zero_and_monotone(offline_distance):
    a, b = smooth_image(seed=4), smooth_image(seed=5)
    assert offline_distance.name == "perceptual-vgg16-offline"
    assert "lpips" not in offline_distance.name.lower()
    assert float(offline_distance(a, a)[0]) == 0.0
    assert float(offline_distance(a, b)[0]) == pytest.approx(float(offline_distance(b, a)[0]), rel=1e-6)
    noise = torch.randn(a.shape, generator=torch.Generator().manual_seed(6))
    d = [float(offline_distance(a, (a + s * noise).clamp(0, 1))[0]) for s in (0.02, 0.08, 0.3)]
    assert 0 < d[0] < d[1] < d[2]


def test_offline_distance_matches_hand_computation_on_fake_encoder():
    distance = metrics.OfflinePerceptualDistance(IdentityTaps(), taps=("relu1_1",))
    a, b = torch.rand(1, 3, 4, 4, dtype=torch.float64), torch.rand(1, 3, 4, 4, dtype=torch.float64)
    an, bn = a.numpy()[0], b.numpy()[0]
    an = an / (np.sqrt((an ** 2).sum(0, keepdims=True)) + 1e-10)
    bn = bn / (np.sqrt((bn ** 2).sum(0, keepdims=True)) + 1e-10)
    assert float(distance(a, b)[0]) == pytest.approx(((an - bn) ** 2).sum(0).mean(), rel=1e-9)


def test_make_perceptual_distance_falls_back_without_lpips(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_lpips(name, *args, **kwargs):
        if name == "lpips":
            raise ImportError("torchvision does not import here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_lpips)
    distance, reason = metrics.make_perceptual_distance("lpips", encoder=IdentityTaps())
    assert distance.name == metrics.OFFLINE_PERCEPTUAL_NAME
    assert "LPIPS unavailable" in reason and "torchvision" in reason
    with pytest.raises(IecastError, match="unknown perceptual"):
        metrics.make_perceptual_distance("clip")


def test_art_fid_reports_unavailable_instead_of_crashing(tmp_path):
    result = metrics.art_fid_scores([tmp_path / "a.png"], [tmp_path / "c.png"], [tmp_path / "s.png"])
    assert result["available"] is False and result["reason"]


# ----------------------------------------------------------------------------- video

def moving_video(frames: int = 6, shift: int = 2, size: int = 48) -> torch.Tensor:
    """A smooth texture translating right by `shift` px per frame."""
    wide = smooth_image(size, size + frames * shift, seed=7)
    return torch.cat([wide[..., t * shift:t * shift + size] for t in range(frames)])


def test_static_video_ratio_is_one_with_a_warning(offline_distance):
    frame = smooth_image(32, 32)
    video = frame.repeat(4, 1, 1, 1)
    with pytest.warns(RuntimeWarning, match="static"):
        result = metrics.temporal_stability(video, video, offline_distance)
    assert result.ratio == 1.0 and result.stylized == 0.0 and result.raw == 0.0
    with pytest.warns(RuntimeWarning, match="static"):
        assert metrics.stability_ratio(0.0, 0.0) == 1.0


def test_shuffled_video_is_less_stable_than_the_raw_video(offline_distance):
    raw = moving_video(frames=8)
    shuffled = raw[torch.tensor([0, 5, 2, 7, 1, 6, 3, 4])]
    result = metrics.temporal_stability(shuffled, raw, offline_distance)
    assert result.ratio > 1.5
    assert result.ratio == pytest.approx(result.stylized / result.raw)
    same = metrics.temporal_stability(raw, raw, offline_distance)
    assert same.ratio == pytest.approx(1.0)


def test_one_frame_and_mismatched_counts_are_errors(offline_distance):
    with pytest.raises(IecastError, match="at least 2 frames"):
        metrics.adjacent_distances(torch.rand(1, 3, 16, 16), offline_distance)
    with pytest.raises(IecastError, match="mismatched frame counts"):
        metrics.temporal_stability(torch.rand(3, 3, 16, 16), torch.rand(4, 3, 16, 16), offline_distance)
    with pytest.raises(IecastError, match="mismatched frame counts"):
        metrics.warping_error(torch.rand(3, 3, 16, 16), torch.rand(4, 3, 16, 16))


def test_consistency_mask_by_hand():
    h, w = 8, 10
    forward = np.zeros((h, w, 2), np.float32)
    forward[..., 0] = 2.0
    backward = -forward
    mask = metrics.consistency_mask(forward, backward)
    assert mask[:, : w - 2].all() and not mask[:, w - 2:].any()  # targets beyond the right edge are out
    assert not metrics.consistency_mask(forward, forward.copy()).any()  # |2 + 2|^2 = 16 > 0.01*8 + 0.5


def test_farneback_recovers_a_translation():
    video = moving_video(frames=2, shift=2, size=64)
    flow = metrics.farneback_flow(*(f.permute(1, 2, 0).numpy() for f in video))
    # frame0(x) = frame1(x - 2): the flow points 2 px left, away from the borders
    assert np.median(flow[16:48, 16:48, 0]) == pytest.approx(-2.0, abs=0.3)
    assert np.median(np.abs(flow[16:48, 16:48, 1])) < 0.3


def test_warping_error_is_small_for_the_raw_video_and_grows_with_flicker():
    raw = moving_video(frames=5, shift=2, size=64)
    floor = metrics.warping_error(raw, raw)
    flicker = (raw + 0.15 * torch.randn(raw.shape, generator=torch.Generator().manual_seed(8))).clamp(0, 1)
    assert floor < 0.01
    assert metrics.warping_error(flicker, raw) > 5 * floor + 0.02


def test_lpips_wrapper_needs_local_backbone_and_rescales_inputs(monkeypatch, tmp_path):
    """A stand-in `lpips` module: the wrapper must refuse without local weights, else feed [-1, 1]."""
    import sys
    import types

    seen = []

    class FakeLPIPS(torch.nn.Module):
        def __init__(self, net="alex", verbose=True):
            super().__init__()

        def forward(self, a, b):
            seen.append((float(a.min()), float(b.max())))
            return (a - b).abs().mean(dim=(1, 2, 3)).view(-1, 1, 1, 1)

    monkeypatch.setitem(sys.modules, "lpips", types.SimpleNamespace(LPIPS=FakeLPIPS))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    distance, reason = metrics.make_perceptual_distance("lpips", encoder=IdentityTaps())
    assert distance.name == metrics.OFFLINE_PERCEPTUAL_NAME and "backbone weights not found" in reason
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / metrics.LPIPS_BACKBONE_FILES["alex"]).write_bytes(b"")
    distance, reason = metrics.make_perceptual_distance("lpips")
    assert reason is None and distance.name == "lpips-alex"
    d = distance(torch.zeros(2, 3, 8, 8), torch.ones(2, 3, 8, 8))
    assert d.shape == (2,) and torch.allclose(d, torch.full((2,), 2.0))
    assert seen == [(-1.0, 1.0)]
