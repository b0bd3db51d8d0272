"""Temporal consistency for video stylization (`iecast video --temporal`).

Each frame is stylized with its network inputs pulled towards the previous frame's where they can
be carried over reliably:

1. Dense optical flow between the raw previous and current frames (OpenCV Farneback), in both
   directions. A pixel is *reliable* where the two flows agree (forward-backward consistency,
   the occlusion test of Sundaram et al. 2010), its match lies inside the frame and looks like
   it (luma within MAX_MISMATCH); occluded, newly visible and badly matched pixels are not, and
   neither is anything when under MIN_RELIABLE of the frame is reliable (a scene cut).
2. Content features (the default, `content_weight`): the encoder's relu4_1/relu5_1 features of
   the current frame are blended with the previous frame's blended features, warped along the
   flow (on the feature grid), at reliable positions, before the attention runs. The attention
   then picks the same style patterns for the same content, and what is decoded is still one
   unaveraged stylization, so strokes stay crisp.
3. Optionally the transformed (attention-output) features (`feature_weight`) and the decoded
   output (`pixel_weight`) are blended the same way. Both steady the video much more, but they
   average two different stylizations and resample the carried one at every frame, which smears
   the strokes: at 256 px a pixel share of 0.3 raised the style loss by 15% (docs/performance.md).

Unreliable pixels keep the frame's own stylization, so new content and scene cuts are painted
fresh. The default content share, 0.7, keeps the frames' content and style losses within 5% of
per-frame stylization (docs/performance.md). A static clip (zero flow, everything reliable, identical features) gives exactly the
per-frame result. OpenCV is optional (`pip install 'iecast[eval]'`).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from iecast.errors import IecastError
from iecast.inference.resize import MIN_PADDED_SIDE as MIN_PADDED, PAD_MULTIPLE as PAD

DEFAULT_STRENGTH = 0.7  # share of the warped previous content features at fully reliable positions
MAX_MISMATCH = 24 / 255  # a reliable pixel's match in the previous raw frame differs by at most this (luma)
MIN_RELIABLE = 0.5  # below this reliable fraction of the frame, it is a scene cut: nothing is carried over
# The carried features and flow cost about 0.6 GB more at 20 MP: a frame may have this share of the
# pixel limit, 8.3 MP (4K UHD) at the default 20 MP, which keeps a run within 4 GB (docs/performance.md)
TEMPORAL_PIXEL_SHARE = 3840 * 2160 / 20_000_000


def temporal_pixel_limit(max_pixels: int | None) -> int | None:
    """The largest frame (pixels) `--temporal` accepts under `max_pixels` (None: no limit)."""
    return None if max_pixels is None else int(max_pixels * TEMPORAL_PIXEL_SHARE)


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


class TemporalBlender:
    """Carries one video's state between frames: the previous raw frame, features and output.

    `content_weight`, `feature_weight` and `pixel_weight` are the previous frame's shares (at
    fully reliable positions) in the content's encoder features, the transformed features and
    the output. Use `stylize(...)` once per frame, in order; `reset()` forgets the past.
    """

    def __init__(self, content_weight: float = DEFAULT_STRENGTH, feature_weight: float = 0.0,
                 pixel_weight: float = 0.0) -> None:
        for name, value in (("content_weight", content_weight), ("feature_weight", feature_weight),
                            ("pixel_weight", pixel_weight)):
            if not 0.0 <= value < 1.0:
                raise IecastError(f"temporal {name} must be in [0, 1) (got {value})")
        _cv2()
        self.content_weight, self.feature_weight, self.pixel_weight = content_weight, feature_weight, pixel_weight
        self.reset()

    def reset(self) -> None:
        self.previous_gray: np.ndarray | None = None
        self.previous_content: dict[str, torch.Tensor] | None = None
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
            previous = torch.from_numpy(self.previous_gray).float().div(255)[None, None]
            current = torch.from_numpy(gray).float().div(255)
            matches = (warp(previous, backward)[0, 0] - current).abs() <= MAX_MISMATCH
            self.flow, self.mask = backward, reliable(backward, forward) * matches
            self.reliable_fraction = float(self.mask.mean())
            if self.reliable_fraction < MIN_RELIABLE:
                self.mask = torch.zeros_like(self.mask)
        self.previous_gray = gray

    def _on_grid(self, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The flow (h, w, 2) and reliable fraction (1, 1, h, w) on a feature grid of the padded frame."""
        height, width = self.flow.shape[:2]
        padded_h = max(MIN_PADDED, -(-height // PAD) * PAD)
        padded_w = max(MIN_PADDED, -(-width // PAD) * PAD)
        stride = padded_h // grid[0]
        pad = (0, padded_w - width, 0, padded_h - height)
        flow = F.pad(self.flow.permute(2, 0, 1).unsqueeze(0), pad, mode="replicate")
        flow = F.avg_pool2d(flow, stride) / stride
        mask = F.avg_pool2d(F.pad(self.mask[None, None], pad), stride)
        return flow[0].permute(1, 2, 0), mask

    def _carry(self, current: torch.Tensor, previous: torch.Tensor | None, weight: float) -> torch.Tensor:
        if self.flow is None or previous is None or weight == 0 or previous.shape != current.shape:
            return current
        flow, mask = self._on_grid(tuple(current.shape[-2:]))
        carried = warp(previous, flow.to(current.device))
        return current + (weight * mask).to(current.device, current.dtype) * (carried - current)

    def blend_content(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The stylizer's content hook: the content's encoder features, each blended with the previous
        frame's (blended) ones along the flow, so the attention sees steady content."""
        previous = self.previous_content or {}
        feats = {tap: self._carry(x, previous.get(tap), self.content_weight) for tap, x in feats.items()}
        self.previous_content = {tap: x.clone() for tap, x in feats.items()}
        return feats

    def blend_features(self, mixed: torch.Tensor) -> torch.Tensor:
        """The stylizer's features hook: the transformed features blended with the previous frame's."""
        mixed = self._carry(mixed, self.previous_features, self.feature_weight)
        self.previous_features = mixed.clone()
        return mixed

    def blend_output(self, out: torch.Tensor) -> torch.Tensor:
        """(1, 3, H, W) decoded frame blended with the previous output along the flow."""
        if self.flow is not None and self.previous_output is not None and self.pixel_weight > 0 \
                and self.previous_output.shape == out.shape:
            mask = F.avg_pool2d(self.mask[None, None], 3, stride=1, padding=1, count_include_pad=False)
            share = (self.pixel_weight * mask).to(out.device, out.dtype)
            carried = warp(self.previous_output, self.flow.to(out.device), mode="bicubic").clamp_(0, 1)
            out = out + share * (carried - out)
        self.previous_output = out.clone()
        return out

    @torch.inference_mode()
    def stylize(self, stylizer, frame: torch.Tensor, styles: Sequence, alpha: float = 1.0,
                style_weights: Sequence[float] | None = None, masks: torch.Tensor | None = None,
                identity_size="auto", tile="auto",
                finish: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """Stylize the next (1, 3, H, W) frame with prepared styles; `finish` (e.g. the luminance
        transfer) runs on the blended result and is not carried to the next frame."""
        self._next_frame(frame)
        out = stylizer.stylize_prepared(frame, styles, alpha, style_weights, masks, identity_size, tile,
                                        features_hook=self.blend_features, content_hook=self.blend_content)
        out = self.blend_output(out.float())
        return finish(out) if finish is not None else out
