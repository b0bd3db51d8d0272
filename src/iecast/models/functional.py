"""Feature statistics shared by the models and the losses (SPEC.md: `mvn`, `mean_std`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-5


def mean_std(x: torch.Tensor, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and sqrt(unbiased var + eps) over H*W, each (N, C, 1, 1).

    The variance is the squared norm of the centred values: on CPU that is ~8x faster than
    `torch.var` forward and ~2x forward + backward, within fp32 rounding of it, and its
    gradient on a constant channel is 0.
    """
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)
    mean = flat.mean(dim=2, keepdim=True)
    var = torch.linalg.vector_norm(flat - mean, dim=2).square() / (flat.shape[2] - 1) + eps
    return mean.view(n, c, 1, 1), var.sqrt().view(n, c, 1, 1)


def mean_variance_norm(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Normalise each channel of each sample to zero mean and unit (unbiased) variance."""
    mean, std = mean_std(x, eps)
    return (x - mean) / std


def adaptive_instance_norm(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """AdaIN: give the content features the style features' channel means and stds."""
    style_mean, style_std = mean_std(style)
    return mean_variance_norm(content) * style_std + style_mean


def pad(x: torch.Tensor, padding: tuple[int, ...], mode: str) -> torch.Tensor:
    """`F.pad` in `x`'s own dtype. CPU autocast runs padding in fp32, so a bf16 input would be
    widened and the next convolution narrow it back (two copies each way, gradients included);
    padding only moves values, so keeping the dtype gives the same result."""
    if torch.is_autocast_enabled(x.device.type):
        with torch.autocast(x.device.type, enabled=False):
            return F.pad(x, padding, mode=mode)
    return F.pad(x, padding, mode=mode)


def _fold_taps(kernel: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The 3 taps of `kernel` along `dim`, as the 2 taps each output phase of a nearest-2x
    upsampled input reads: phase 0 sees (k0, k1 + k2), phase 1 sees (k0 + k1, k2)."""
    k0, k1, k2 = kernel.unbind(dim)
    return torch.stack([k0, k1 + k2], dim), torch.stack([k0 + k1, k2], dim)


def upsample_reflect_conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                             relu: bool = False) -> torch.Tensor:
    """`conv2d(pad(upsample_nearest_2x(x), 1, "reflect"), weight, bias)` in 4/9 of the multiply-adds.

    Output pixel (2i+a, 2j+b) of a 3x3 convolution over a nearest-2x upsampled image reads a
    2x2 window of the original, and reflect-padding the upsampled image by 1 equals
    replicate-padding the original by 1. So each of the four phases (a, b) is a 2x2 convolution
    of the input, replicate-padded on the sides that phase reads past, with folded taps; the
    phases interleave into the output.
    Equal to the three-step form up to float rounding, gradients included. `relu=True` applies
    a ReLU to each phase in place before the interleave: the output may be a view, and a later
    in-place ReLU on a view would make autograd copy the whole buffer in backward.
    """
    n, _, height, width = x.shape
    phases = [[F.conv2d(pad(x, (1 - b, b, 1 - a, a), "replicate"), kernel, bias)  # rows i+a-1+{0,1}, cols j+b-1+{0,1}
               for b, kernel in enumerate(_fold_taps(rows, 3))] for a, rows in enumerate(_fold_taps(weight, 2))]
    if relu:
        phases = [[torch.relu_(p) for p in row] for row in phases]  # each a convolution's fresh output
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        # interleave in (n, i, a, j, b, channels) order: one copy, and the output stays channels_last
        out = torch.stack([torch.stack([p.permute(0, 2, 3, 1) for p in row], 3) for row in phases], 2)
        return out.view(n, 2 * height, 2 * width, -1).permute(0, 3, 1, 2)
    out = torch.stack([p for row in phases for p in row], 2).view(n, -1, 2, 2, height, width)  # (n, channels, a, b, i, j)
    return out.permute(0, 1, 4, 2, 5, 3).reshape(n, -1, 2 * height, 2 * width)
