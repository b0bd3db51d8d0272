"""Colour control for stylization: keep the content's colours (luminance transfer) or give the
style the content's colours before stylizing (histogram matching), after Gatys et al.,
"Preserving Color in Neural Artistic Style Transfer" (2016)."""
from __future__ import annotations

import torch

# ITU-R BT.601 full-range RGB -> YCbCr (JPEG's convention); rows give Y, Cb, Cr.
_RGB_TO_YCBCR = torch.tensor([
    [0.299, 0.587, 0.114],
    [-0.168735892, -0.331264108, 0.5],
    [0.5, -0.418687589, -0.081312411],
], dtype=torch.float64)
_YCBCR_TO_RGB = torch.linalg.inv(_RGB_TO_YCBCR)

PRESERVE_COLOR_MODES = ("luminance", "histogram")


def rgb_to_ycbcr(image: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> Y in [0, 1], Cb and Cr centred on 0 (in [-0.5, 0.5])."""
    return torch.einsum("ij,njhw->nihw", _RGB_TO_YCBCR.to(image), image)


def ycbcr_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """Inverse of `rgb_to_ycbcr` (not clamped)."""
    return torch.einsum("ij,njhw->nihw", _YCBCR_TO_RGB.to(image), image)


def transfer_luminance(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The stylized image's luma with the content's chroma: the content keeps its colours."""
    out = rgb_to_ycbcr(content.to(stylized.dtype))
    out[:, 0] = rgb_to_ycbcr(stylized)[:, 0]
    return ycbcr_to_rgb(out).clamp(0, 1)


def _color_stats(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = image.reshape(3, -1).double()
    mean = pixels.mean(dim=1, keepdim=True)
    centred = pixels - mean
    cov = centred @ centred.T / max(1, pixels.shape[1] - 1) + 1e-7 * torch.eye(3, dtype=torch.float64)
    return mean, cov


def _sym_power(matrix: torch.Tensor, power: float) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(values.clamp_min(1e-10) ** power) @ vectors.T


def match_color_histogram(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Affinely recolour `style` (1, 3, H, W) so its colour mean and covariance equal the content's.

    x' = Cc^(1/2) Cs^(-1/2) (x - mu_s) + mu_c (symmetric square roots), clamped to [0, 1].
    """
    mean_s, cov_s = _color_stats(style)
    mean_c, cov_c = _color_stats(content)
    transform = _sym_power(cov_c, 0.5) @ _sym_power(cov_s, -0.5)
    pixels = style.reshape(3, -1).double()
    matched = transform @ (pixels - mean_s) + mean_c
    return matched.reshape(style.shape).to(style.dtype).clamp(0, 1)
