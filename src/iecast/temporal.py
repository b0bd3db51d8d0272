"""Temporal consistency for video stylization (`iecast video --temporal`).

Each frame is stylized on its own, then pulled towards the previous frame's result where that
result can be carried over reliably:

1. Dense optical flow between the raw previous and current frames (OpenCV Farneback), in both
   directions. A pixel is *reliable* where the two flows agree (forward-backward consistency,
   the occlusion test of Sundaram et al. 2010) and its match lies inside the frame; occluded,
   newly visible and badly matched pixels are not.
2. Features: the transformed (attention-output) features of the current frame are blended with
   the previous frame's blended features, warped along the flow, at reliable positions
   (`feature_weight`), before the decoder runs; the decoder then paints consistent strokes.
3. Pixels: the decoded frame is blended the same way with the previous output, warped
   (`pixel_weight`), which removes the flicker that remains after decoding.

Unreliable pixels keep the frame's own stylization, so new content and scene cuts are painted
fresh. A static clip (zero flow, everything reliable, identical features) gives exactly the
per-frame result. OpenCV is optional (`pip install 'iecast[eval]'`).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from iecast.errors import IecastError

FEATURE_WEIGHT = 0.5  # share of the warped previous features at fully reliable positions
PIXEL_WEIGHT = 0.5  # share of the warped previous output at fully reliable pixels
FEATURE_STRIDE = 8  # relu4_1 is 1/8 of the (padded) input


def _cv2():
    try:
        import cv2
    except ImportError as exc:
        raise IecastError("--temporal needs OpenCV for optical flow: pip install 'iecast[eval]' "
                          "(or opencv-python-headless)") from exc
    return cv2


def to_gray(frame: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [0, 1] -> (H, W) uint8 luma (BT.601)."""
    rgb = frame[0].detach().float().clamp(0, 1).cpu()
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return (luma * 255 + 0.5).to(torch.uint8).numpy()


def optical_flow(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Dense flow (H, W, 2), float32, with first(y, x) ~ second(y + fy, x + fx); inputs are uint8 gray."""
    cv2 = _cv2()
    levels = int(max(1, min(5, np.log2(max(8, min(first.shape[:2]) / 16)))))
    return cv2.calcOpticalFlowFarneback(first, second, None, pyr_scale=0.5, levels=levels, winsize=21,
                                        iterations=4, poly_n=7, poly_sigma=1.5, flags=cv2.OPTFLOW_FARNEBACK_GAUSSIAN)


def warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Sample (N, C, H, W) `image` at (x + fx, y + fy) for a (H, W, 2) `flow` in pixels; borders replicated."""
    height, width = image.shape[-2:]
    ys = torch.arange(height, dtype=torch.float32, device=flow.device).view(-1, 1)
    xs = torch.arange(width, dtype=torch.float32, device=flow.device).view(1, -1)
    gx = (xs + flow[..., 0]) * (2 / max(1, width - 1)) - 1
    gy = (ys + flow[..., 1]) * (2 / max(1, height - 1)) - 1
    grid = torch.stack([gx, gy], -1).unsqueeze(0).to(image.device, image.dtype).expand(image.shape[0], -1, -1, -1)
    return F.grid_sample(image, grid, mode=mode, padding_mode="border", align_corners=True)


def reliable(backward: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
    """(H, W) float mask, 1 where `backward` (current -> previous) and `forward` (previous -> current)
    flows undo each other and the match lies inside the frame, else 0."""
    height, width = backward.shape[:2]
    forward_there = warp(forward.permute(2, 0, 1).unsqueeze(0), backward)[0].permute(1, 2, 0)
    mismatch = ((backward + forward_there) ** 2).sum(-1)
    allowed = 0.01 * ((backward ** 2).sum(-1) + (forward_there ** 2).sum(-1)) + 0.5
    ys = torch.arange(height, dtype=torch.float32).view(-1, 1)
    xs = torch.arange(width, dtype=torch.float32).view(1, -1)
    tx, ty = xs + backward[..., 0], ys + backward[..., 1]
    inside = (tx >= 0) & (tx <= width - 1) & (ty >= 0) & (ty <= height - 1)
    return ((mismatch <= allowed) & inside).float()


def match_channel_stats(x: torch.Tensor, reference: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """`x` with each channel's spatial mean and standard deviation set to `reference`'s.

    Averaging two frames' features whose textures differ lowers their spread, which the decoder
    would paint as a washed-out style; the style lives in these statistics (as in AdaIN)."""
    mean_x, std_x = x.mean((-2, -1), keepdim=True), x.std((-2, -1), keepdim=True)
    mean_r, std_r = reference.mean((-2, -1), keepdim=True), reference.std((-2, -1), keepdim=True)
    return (x - mean_x) * (std_r / (std_x + eps)) + mean_r


def _low_pass(x: torch.Tensor, size: int = 5) -> torch.Tensor:
    return F.avg_pool2d(F.pad(x, (size // 2,) * 4, mode="replicate"), size, stride=1)


def restore_detail(blended: torch.Tensor, fresh: torch.Tensor, max_gain: float = 1.5) -> torch.Tensor:
    """`blended` with its fine detail (what a 5x5 box blur removes) scaled, per channel, to the spread
    of `fresh`'s: averaging two differently textured frames halves texture contrast, never more than
    the fresh frame has."""
    base = _low_pass(blended)
    detail = blended - base
    fresh_detail = fresh - _low_pass(fresh)
    gain = (fresh_detail.std((-2, -1), keepdim=True) / detail.std((-2, -1), keepdim=True).clamp_min(1e-6))
    return (base + detail * gain.clamp(1.0, max_gain)).clamp_(0, 1)


class TemporalBlender:
    """Carries one video's state between frames: the previous raw frame, features and output.

    Use `stylize(...)` once per frame, in order. `reset()` forgets the past (e.g. a new clip).
    """

    def __init__(self, feature_weight: float = FEATURE_WEIGHT, pixel_weight: float = PIXEL_WEIGHT,
                 keep_statistics: bool = False, keep_detail: bool = False) -> None:
        for name, value in (("feature_weight", feature_weight), ("pixel_weight", pixel_weight)):
            if not 0.0 <= value < 1.0:
                raise IecastError(f"temporal {name} must be in [0, 1) (got {value})")
        _cv2()
        self.feature_weight, self.pixel_weight = feature_weight, pixel_weight
        self.keep_statistics, self.keep_detail = keep_statistics, keep_detail
        self.reset()

    def reset(self) -> None:
        self.previous_gray: np.ndarray | None = None
        self.previous_features: torch.Tensor | None = None
        self.previous_output: torch.Tensor | None = None
        self.flow: torch.Tensor | None = None  # current -> previous, (H, W, 2) pixels
        self.mask: torch.Tensor | None = None  # (H, W) in {0, 1}
        self.reliable_fraction: float | None = None

    def _next_frame(self, frame: torch.Tensor) -> None:
        """Flow and reliability between the previous raw frame and this one."""
        gray = to_gray(frame)
        if self.previous_gray is None or self.previous_gray.shape != gray.shape:
            self.reset()
        else:
            backward = torch.from_numpy(optical_flow(gray, self.previous_gray))
            forward = torch.from_numpy(optical_flow(self.previous_gray, gray))
            self.flow, self.mask = backward, reliable(backward, forward)
            self.reliable_fraction = float(self.mask.mean())
        self.previous_gray = gray

    def blend_features(self, mixed: torch.Tensor) -> torch.Tensor:
        """The stylizer's hook: (1, C, h, w) transformed features of the padded frame, blended with
        the previous frame's along the flow (downsampled to the feature grid)."""
        if self.flow is not None and self.previous_features is not None and self.feature_weight > 0 \
                and self.previous_features.shape == mixed.shape:
            height, width = self.flow.shape[:2]
            padded_h, padded_w = mixed.shape[-2] * FEATURE_STRIDE, mixed.shape[-1] * FEATURE_STRIDE
            pad = (0, max(0, padded_w - width), 0, max(0, padded_h - height))
            flow = F.pad(self.flow.permute(2, 0, 1).unsqueeze(0), pad, mode="replicate")[..., :padded_h, :padded_w]
            flow = F.avg_pool2d(flow, FEATURE_STRIDE) / FEATURE_STRIDE
            mask = F.avg_pool2d(F.pad(self.mask[None, None], pad)[..., :padded_h, :padded_w], FEATURE_STRIDE)
            share = (self.feature_weight * mask).to(mixed.device, mixed.dtype)
            carried = warp(self.previous_features, flow[0].permute(1, 2, 0))
            blended = mixed + share * (carried - mixed)
            mixed = match_channel_stats(blended, mixed) if self.keep_statistics else blended
        self.previous_features = mixed.clone()
        return mixed

    def blend_output(self, out: torch.Tensor) -> torch.Tensor:
        """(1, 3, H, W) decoded frame blended with the previous output along the flow."""
        if self.flow is not None and self.previous_output is not None and self.pixel_weight > 0 \
                and self.previous_output.shape == out.shape:
            mask = F.avg_pool2d(self.mask[None, None], 3, stride=1, padding=1, count_include_pad=False)
            share = (self.pixel_weight * mask).to(out.device, out.dtype)
            carried = warp(self.previous_output, self.flow.to(out.device), mode="bicubic").clamp_(0, 1)
            blended = out + share * (carried - out)
            out = restore_detail(blended, out) if self.keep_detail else blended
        self.previous_output = out.clone()
        return out

    def stylize(self, stylizer, frame: torch.Tensor, styles: Sequence, alpha: float = 1.0,
                style_weights: Sequence[float] | None = None, masks: torch.Tensor | None = None,
                identity_size="auto", tile="auto",
                finish: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """Stylize the next (1, 3, H, W) frame with prepared styles; `finish` (e.g. the luminance
        transfer) runs on the blended result and is not carried to the next frame."""
        self._next_frame(frame)
        out = stylizer.stylize_prepared(frame, styles, alpha, style_weights, masks, identity_size, tile,
                                        features_hook=self.blend_features)
        out = self.blend_output(out.float())
        return finish(out) if finish is not None else out
