"""Sizes on the way into the network: resizing to a shorter side (refused, before anything is
allocated, when the result would be over the pixel limit) and padding to the encoder's stride."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from iecast.errors import IecastError
from iecast.images import MAX_PIXELS, RAISE_PIXEL_LIMIT, megapixels

PAD_MULTIPLE = 16  # the encoder's total stride (relu5_1): padded sizes keep pooling exact
MIN_PADDED_SIDE = 32  # relu5_1 needs at least 2x2 positions for its reflection padding


def pad_to_multiple(x: torch.Tensor, multiple: int = PAD_MULTIPLE, minimum: int = 0) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad bottom/right (reflection, or replication where the image is too small to reflect)
    to a multiple of `multiple` and at least `minimum`; returns the original (H, W)."""
    h, w = x.shape[-2:]
    th, tw = padded_shape(h, w, multiple, minimum)
    ph, pw = th - h, tw - w
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def padded_shape(height: int, width: int, multiple: int = PAD_MULTIPLE, minimum: int = MIN_PADDED_SIDE) -> tuple[int, int]:
    """(H, W) after `pad_to_multiple`; by default as the network sees a content (sides rounded up to
    PAD_MULTIPLE, at least MIN_PADDED_SIDE)."""
    return max(minimum, -(-height // multiple) * multiple), max(minimum, -(-width // multiple) * multiple)


def check_padded(label: str, height: int, width: int, max_pixels: int | None) -> None:
    """Refuse a content whose padded size is over `max_pixels`: every whole-image buffer has that size,
    up to twice the image's own for a 16-pixel strip."""
    if max_pixels is None:
        return
    ph, pw = padded_shape(height, width)
    if ph * pw > max_pixels:
        raise IecastError(f"{label}: {width}x{height} is padded to {pw}x{ph} for the network "
                          f"({megapixels(pw * ph)}), over the pixel limit of {max_pixels} pixels; {RAISE_PIXEL_LIMIT}")


def shorter_side_shape(height: int, width: int, size: int | None) -> tuple[int, int]:
    """(H, W) after resizing so the shorter side is `size` (None: unchanged)."""
    if size is None:
        return height, width
    scale = size / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def check_resize(label: str, height: int, width: int, size: int | None, max_pixels: int | None,
                 limit: str = "pixel limit", hint: str = f"use a smaller size, or {RAISE_PIXEL_LIMIT}") -> None:
    """Refuse, before anything is allocated, an image whose resize to shorter side `size` would
    exceed `max_pixels` (an extreme aspect ratio or a huge size)."""
    if max_pixels is None:
        return
    new_h, new_w = shorter_side_shape(height, width, size)
    if new_h * new_w <= max_pixels:
        return
    if (new_h, new_w) == (height, width):
        raise IecastError(f"{label}: {width}x{height} ({megapixels(width * height)}) is over the {limit} of "
                          f"{max_pixels} pixels; {hint}")
    raise IecastError(f"{label}: {width}x{height} resized to a shorter side of {size} would be {new_w}x{new_h} "
                      f"({megapixels(new_w * new_h)}), over the {limit} of {max_pixels} pixels; {hint}")


def resize_shorter_side(x: torch.Tensor, size: int | None, upscale: bool = True, *,
                        max_pixels: int | None = MAX_PIXELS, label: str = "image") -> torch.Tensor:
    """Resize (antialiased bilinear) so the shorter side is `size`; None keeps the size.

    A result over `max_pixels` (per image) is refused with a one-line error before it is allocated.
    """
    if size is None:
        return x
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    if scale == 1 or (scale > 1 and not upscale):
        return x
    check_resize(label, h, w, size, max_pixels)
    new = shorter_side_shape(h, w, size)
    return F.interpolate(x, size=new, mode="bilinear", align_corners=False, antialias=scale < 1).clamp(0, 1)
