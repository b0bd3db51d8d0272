"""Evaluation metrics as plain functions: image quality, perceptual distance, video stability.

Images are float tensors (N, 3, H, W) in [0, 1] unless a function says otherwise. Every
feature-based metric takes the encoder it uses as an argument, and the harness records the
encoder's name next to the numbers, because values from different encoders are not comparable.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from iecast.training import losses
from iecast.errors import IecastError
from iecast.models.vgg import TAPS, VGGEncoder
from iecast.weights import load_encoder

OFFLINE_PERCEPTUAL_NAME = "perceptual-vgg16-offline"
OFFLINE_PERCEPTUAL_ENCODER = "vgg16-imagenet-offline"
LPIPS_BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth", "squeeze": "squeezenet1_1-b8a52dc0.pth"}
ART_FID_CHECKPOINT = "art_inception.pth"
SSIM_MIN_SIDE = 7  # scikit-image's 7x7 SSIM window (not the model's minimum, iecast.images.MIN_SIDE)


# ----------------------------------------------------------------------------- losses (SPEC.md)

@torch.no_grad()
def content_loss(output: torch.Tensor, content: torch.Tensor, encoder: VGGEncoder) -> float:
    """SPEC.md's content loss (MSE of mean-variance-normalised relu4_1 and relu5_1 features) of two images:
    `losses.content_loss`, the training term, on `encoder`'s features, as a float without gradients. The
    same number as the harness's `content_loss` column, hence the same name."""
    return float(losses.content_loss(encoder(output), encoder(content)))


@torch.no_grad()
def style_loss(output: torch.Tensor, style: torch.Tensor, encoder: VGGEncoder) -> float:
    """SPEC.md's style loss (channel mean and std MSE summed over relu1_1 ... relu5_1) of two images:
    `losses.style_loss` on `encoder`'s features, as a float without gradients (the `style_loss` column)."""
    return float(losses.style_loss(encoder(output), encoder(style)))


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C) channel correlations averaged over positions: F F^T / (H W)."""
    n, c = features.shape[:2]
    flat = features.reshape(n, c, -1)
    return flat @ flat.transpose(1, 2) / flat.shape[2]


def gram_loss_from_features(output_feats: dict[str, torch.Tensor], style_grams: dict[str, torch.Tensor],
                            taps: Sequence[str] = TAPS) -> torch.Tensor:
    """Sum over taps of MSE between the output's Gram matrices and precomputed style Gram matrices."""
    return sum(F.mse_loss(gram_matrix(output_feats[t]), style_grams[t]) for t in taps)


@torch.no_grad()
def gram_style_loss(output: torch.Tensor, style: torch.Tensor, encoder: VGGEncoder) -> float:
    """Gatys et al.'s style loss: Gram-matrix MSE summed over relu1_1 ... relu5_1."""
    style_grams = {t: gram_matrix(f) for t, f in encoder(style).items()}
    return float(gram_loss_from_features(encoder(output), style_grams))


# ----------------------------------------------------------------------------- SSIM

def to_gray(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) in [0, 1] -> (H, W) float64 luminance (Rec. 709, as scikit-image)."""
    from skimage.color import rgb2gray

    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {image.shape[0]}")
        image = image[0]
    return rgb2gray(image.detach().permute(1, 2, 0).double().clamp(0, 1).cpu().numpy())


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Grayscale SSIM (scikit-image, Gaussian window sigma 1.5 as Wang et al.) of two same-size images."""
    from skimage.metrics import structural_similarity

    if a.shape[-2:] != b.shape[-2:]:
        raise ValueError(f"SSIM needs same-size images (got {tuple(a.shape[-2:])} and {tuple(b.shape[-2:])})")
    if min(a.shape[-2:]) < SSIM_MIN_SIDE:
        raise ValueError(f"SSIM needs images of at least {SSIM_MIN_SIDE}x{SSIM_MIN_SIDE} (got {tuple(a.shape[-2:])})")
    return float(structural_similarity(to_gray(a), to_gray(b), data_range=1.0, gaussian_weights=True,
                                       sigma=1.5, use_sample_covariance=False))


# ----------------------------------------------------------------------------- perceptual distance

def unit_normalize(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Divide each position's feature vector by its L2 norm over channels (as LPIPS does)."""
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class PerceptualDistance:
    """A perceptual distance with a name, computed batch-wise.

    `features(x)` returns what `distance(fa, fb)` compares, so a video's frames are encoded
    once and adjacent frames compared without re-encoding.
    """

    name: str = "perceptual"

    def features(self, images: torch.Tensor) -> object:
        raise NotImplementedError

    def distance(self, feats_a: object, feats_b: object) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-sample distances (N,) between two image batches."""
        return self.distance(self.features(a), self.features(b))

    def describe(self) -> dict:
        return {"name": self.name}


class OfflinePerceptualDistance(PerceptualDistance):
    """LPIPS' form without its learned weights, on our offline VGG-16.

    Features at relu1_1 ... relu5_1 are unit-normalised over channels; the squared
    differences are summed over channels, averaged over positions and summed over taps
    (LPIPS' "lin=False" baseline, with VGG-16 relu*_1 taps instead of relu*_2/relu*_3).
    Not LPIPS: its numbers are not comparable with published LPIPS values.
    """

    name = OFFLINE_PERCEPTUAL_NAME

    def __init__(self, encoder: VGGEncoder | None = None, taps: Sequence[str] = TAPS) -> None:
        if encoder is None:
            encoder = load_encoder(OFFLINE_PERCEPTUAL_ENCODER)
        self.encoder = encoder
        self.taps = tuple(taps)

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.encoder(images, last=self.taps[-1])
        return {t: unit_normalize(feats[t]) for t in self.taps}

    def distance(self, feats_a: dict[str, torch.Tensor], feats_b: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum((feats_a[t] - feats_b[t]).pow(2).sum(dim=1).mean(dim=(1, 2)) for t in self.taps)

    def describe(self) -> dict:
        return {"name": self.name, "encoder": self.encoder.source, "taps": list(self.taps),
                "note": "LPIPS form (unit-normalised features, averaged squared differences) without learned "
                        "weights; not comparable with published LPIPS values"}


class LpipsDistance(PerceptualDistance):
    """The `lpips` package (Zhang et al. 2018); only built when its backbone weights are on disk."""

    def __init__(self, net: str = "alex") -> None:
        import lpips  # noqa: F401  (ImportError is the caller's signal to fall back)

        backbone = Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONE_FILES[net]
        if not backbone.is_file():
            raise FileNotFoundError(f"LPIPS backbone weights not found at {backbone} (no download attempted)")
        self.model = lpips.LPIPS(net=net, verbose=False).eval()
        self.name = f"lpips-{net}"
        self.net = net

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return images

    @torch.no_grad()
    def distance(self, feats_a: torch.Tensor, feats_b: torch.Tensor) -> torch.Tensor:
        return self.model(feats_a * 2 - 1, feats_b * 2 - 1).flatten()

    def describe(self) -> dict:
        return {"name": self.name, "package": "lpips", "net": self.net}


def make_perceptual_distance(prefer: str = "lpips", encoder: VGGEncoder | None = None) -> tuple[PerceptualDistance, str | None]:
    """LPIPS when the package imports and its weights are local, else the offline stand-in.

    Returns (distance, why LPIPS was not used or None). `prefer="offline"` skips LPIPS.
    """
    reason = "offline distance requested"
    if prefer == "lpips":
        try:
            return LpipsDistance(), None
        except Exception as exc:  # ImportError (torchvision), missing weights, any failure inside lpips
            reason = f"LPIPS unavailable ({type(exc).__name__}: {str(exc).splitlines()[0][:140] if str(exc) else ''})"
    elif prefer != "offline":
        raise IecastError(f"unknown perceptual distance {prefer!r}; use 'lpips' or 'offline'")
    return OfflinePerceptualDistance(encoder), reason


# ----------------------------------------------------------------------------- FID / ArtFID

def art_fid_scores(stylized: Sequence[Path], contents: Sequence[Path], styles: Sequence[Path]) -> dict:
    """FID and ArtFID (Wright & Ommer 2022) through the `art-fid` package, when it can run offline.

    `stylized[i]` must be the output for `contents[i]`. Returns {"available": False, "reason": ...}
    rather than raising when the package or its Inception weights are missing.
    """
    if len(stylized) != len(contents):
        raise IecastError(f"ArtFID needs one content per output (got {len(stylized)} outputs and {len(contents)} contents)")
    checkpoint = Path(tempfile.gettempdir()) / "art_fid" / ART_FID_CHECKPOINT
    try:
        from art_fid import art_fid as art_fid_module
    except Exception as exc:
        return {"available": False, "reason": f"art-fid not importable ({type(exc).__name__}); pip install 'iecast[artfid]' "
                                              "(needs torchvision)"}
    if not checkpoint.is_file():
        return {"available": False, "reason": f"art-fid's Inception weights are not at {checkpoint} (no download attempted)"}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folders = {k: Path(tmp, k) for k in ("stylized", "content", "style")}
            for folder in folders.values():
                folder.mkdir()
            for i, (out, content) in enumerate(zip(stylized, contents)):
                os.symlink(Path(out).resolve(), folders["stylized"] / f"{i:06d}{Path(out).suffix.lower()}")
                os.symlink(Path(content).resolve(), folders["content"] / f"{i:06d}{Path(content).suffix.lower()}")
            for i, style in enumerate(styles):
                os.symlink(Path(style).resolve(), folders["style"] / f"{i:06d}{Path(style).suffix.lower()}")
            fid = float(art_fid_module.compute_fid(str(folders["stylized"]), str(folders["style"]), 16, "cpu"))
            content_distance = float(art_fid_module.compute_content_distance(
                str(folders["stylized"]), str(folders["content"]), 16, "lpips", "cpu"))
    except Exception as exc:
        return {"available": False, "reason": f"art-fid failed ({type(exc).__name__}: {str(exc).splitlines()[0][:140] if str(exc) else ''})"}
    return {"available": True, "fid": fid, "content_lpips": content_distance, "art_fid": (content_distance + 1) * (fid + 1)}


# ----------------------------------------------------------------------------- video

@torch.no_grad()
def adjacent_distances(frames: torch.Tensor, distance: PerceptualDistance, chunk: int = 8) -> torch.Tensor:
    """Distances between frames t and t+1, (T-1,), each frame encoded once."""
    if frames.shape[0] < 2:
        raise IecastError(f"a video needs at least 2 frames (got {frames.shape[0]})")
    feats = [distance.features(frames[i:i + chunk]) for i in range(0, frames.shape[0], chunk)]
    if isinstance(feats[0], dict):
        merged = {k: torch.cat([f[k] for f in feats]) for k in feats[0]}
        return distance.distance({k: v[:-1] for k, v in merged.items()}, {k: v[1:] for k, v in merged.items()})
    merged = torch.cat(feats)
    return distance.distance(merged[:-1], merged[1:])


@dataclass(frozen=True)
class TemporalStability:
    """The paper's Table 2: mean adjacent-frame distance of a stylized video and of its raw video."""

    stylized: float
    raw: float
    ratio: float
    distance: str


def stability_ratio(stylized_mean: float, raw_mean: float) -> float:
    """stylized / raw; a static video (0 / 0) is perfectly stable: 1.0, with a warning."""
    if raw_mean == 0.0:
        if stylized_mean == 0.0:
            warnings.warn("static video: adjacent frames are identical in both videos (0/0); ratio set to 1.0",
                          RuntimeWarning, stacklevel=2)
            return 1.0
        warnings.warn("the raw video is static but the stylized one changes; ratio is infinite", RuntimeWarning, stacklevel=2)
        return float("inf")
    return stylized_mean / raw_mean


def temporal_stability(stylized: torch.Tensor, raw: torch.Tensor, distance: PerceptualDistance) -> TemporalStability:
    """Mean perceptual distance of adjacent stylized frames, of adjacent raw frames, and their ratio.

    `stylized` and `raw` are (T, 3, H, W); they must have the same number of frames.
    """
    if stylized.shape[0] != raw.shape[0]:
        raise IecastError(f"mismatched frame counts: {stylized.shape[0]} stylized frames for {raw.shape[0]} raw frames")
    s = float(adjacent_distances(stylized, distance).mean())
    r = float(adjacent_distances(raw, distance).mean())
    return TemporalStability(stylized=s, raw=r, ratio=stability_ratio(s, r), distance=distance.name)


def _frame_to_numpy(frame: torch.Tensor) -> np.ndarray:
    return frame.detach().permute(1, 2, 0).float().clamp(0, 1).cpu().numpy()


def farneback_flow(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Dense flow (H, W, 2) with first(y, x) ~ second(y + fy, x + fx); inputs (H, W, 3) in [0, 1]."""
    import cv2

    def gray(x: np.ndarray) -> np.ndarray:
        return cv2.cvtColor((x * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2GRAY)

    return cv2.calcOpticalFlowFarneback(gray(first), gray(second), None, pyr_scale=0.5, levels=3, winsize=15,
                                        iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


def _sample(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """image sampled at (x + fx, y + fy), bilinear, borders replicated."""
    import cv2

    h, w = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image.astype(np.float32), grid_x + flow[..., 0], grid_y + flow[..., 1],
                     interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def consistency_mask(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """True where forward and backward flow agree and the target is inside the frame.

    Occlusion test of Sundaram et al. (2010), as used by Ruder et al. and Lai et al.:
    |f + b'|^2 > 0.01 (|f|^2 + |b'|^2) + 0.5, with b' the backward flow at the forward target.
    """
    h, w = forward.shape[:2]
    backward_at_target = _sample(backward, forward)
    lhs = ((forward + backward_at_target) ** 2).sum(-1)
    rhs = 0.01 * ((forward ** 2).sum(-1) + (backward_at_target ** 2).sum(-1)) + 0.5
    grid_x, grid_y = np.meshgrid(np.arange(w), np.arange(h))
    tx, ty = grid_x + forward[..., 0], grid_y + forward[..., 1]
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    return (lhs <= rhs) & inside


def warping_errors(stylized: torch.Tensor, raw: torch.Tensor) -> np.ndarray:
    """Short-term warping error per adjacent pair (Lai et al. 2018), (T-1,).

    Flow is estimated on the raw frames (OpenCV Farneback) and frame t+1 of `stylized` is
    warped back onto frame t; the error is the squared RGB difference summed over channels
    and averaged over non-occluded pixels. Stylized frames are resized to the raw size.
    """
    if stylized.shape[0] != raw.shape[0]:
        raise IecastError(f"mismatched frame counts: {stylized.shape[0]} stylized frames for {raw.shape[0]} raw frames")
    if raw.shape[0] < 2:
        raise IecastError(f"a video needs at least 2 frames (got {raw.shape[0]})")
    if stylized.shape[-2:] != raw.shape[-2:]:
        stylized = F.interpolate(stylized, size=raw.shape[-2:], mode="bilinear", align_corners=False)
    raw_np = [_frame_to_numpy(f) for f in raw]
    out_np = [_frame_to_numpy(f) for f in stylized]
    errors = []
    for t in range(len(raw_np) - 1):
        forward = farneback_flow(raw_np[t], raw_np[t + 1])
        backward = farneback_flow(raw_np[t + 1], raw_np[t])
        mask = consistency_mask(forward, backward)
        if not mask.any():
            continue
        warped = _sample(out_np[t + 1], forward)
        errors.append(float((((out_np[t] - warped) ** 2).sum(-1))[mask].mean()))
    if not errors:
        raise IecastError("optical flow found no consistent pixels in any frame pair; the warping error is undefined")
    return np.asarray(errors)


def warping_error(stylized: torch.Tensor, raw: torch.Tensor) -> float:
    """Mean of `warping_errors` over the video."""
    return float(warping_errors(stylized, raw).mean())

