"""Overlapping-tile execution of the encoder and the decoder, for images of any size.

A convolution near a tile's edge sees the tile's padding instead of the real neighbours, so
its output there is wrong. The wrong band grows by one pixel per 3x3 convolution, halves
(rounded up) at each 2x2 pooling and doubles at each x2 upsampling. Each tile is therefore
computed with a halo at least as wide as that band, and only its core is kept: the cores
then agree with the whole-image result up to floating-point rounding. Tile origins are
multiples of the network's total stride, so pooling windows line up with the whole image.
Statistics over the whole image (the transform's mean/variance normalisation) are never
computed per tile: the tiled encoder returns the complete relu4_1/relu5_1 maps (1/8 and
1/16 resolution), and the statistics are taken over those.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
from torch import nn

from iecast.models.vgg import BLOCK_DEPTHS, TAPS, VGGEncoder

DEFAULT_TILE = 1024  # content pixels per tile side when tiling; with MAX_PIXELS it bounds a run's memory
AUTO_TILE_ABOVE = 2048 * 1024  # "auto" tiles images with more pixels than this (Full HD still runs whole)
ENCODER_STRIDE = {"relu1_1": 1, "relu2_1": 2, "relu3_1": 4, "relu4_1": 8, "relu5_1": 16}
DECODER_STRIDE = 8  # output pixels per relu4_1 position


def encoder_halo(encoder: VGGEncoder, last: str = "relu5_1") -> int:
    """Input pixels of context a tile needs so its core's taps up to `last` are exact.

    Rounded up to a multiple of the stride of `last`, so tile origins stay aligned.
    """
    band, scale = 0, 1  # wrong band, in pixels of the current resolution
    depth_of_last = TAPS.index(last)
    for block, depth in enumerate(BLOCK_DEPTHS[encoder.arch][: depth_of_last + 1]):
        if block > 0:
            band, scale = math.ceil(band / 2), scale * 2
        band += depth if block < depth_of_last else 1  # only conv{last}_1 of the last block is needed
    stride = ENCODER_STRIDE[last]
    return math.ceil(band * scale / stride) * stride


def decoder_halo(decoder_layers: nn.Sequential, extra_convs: int = 1) -> int:
    """relu4_1 positions of context a decoder tile needs (plus `extra_convs` 3x3 convs before it)."""
    band, scale = extra_convs, 1
    for layer in decoder_layers:
        if isinstance(layer, nn.Upsample):
            band, scale = band * 2, scale * 2
        elif isinstance(layer, nn.Conv2d):
            band += (layer.kernel_size[0] - 1) // 2
    return math.ceil(band / scale)


def choose_tile(height: int, width: int, tile: int | str | None = "auto") -> int | None:
    """The tile side in content pixels (None = whole image): 'auto' tiles only large images."""
    if tile is None or tile == 0:
        return None
    if tile == "auto":
        return DEFAULT_TILE if height * width > AUTO_TILE_ABOVE else None
    if isinstance(tile, str) or int(tile) < 64:
        raise ValueError(f"tile must be 'auto', None/0 (no tiling) or a size of at least 64 pixels (got {tile!r})")
    return int(tile)


def axis_spans(length: int, core: int, halo: int, align: int) -> Iterator[tuple[int, int, int, int]]:
    """(core_start, core_end, in_start, in_end) along one axis; starts are multiples of `align`."""
    core = max(align, core // align * align)
    for start in range(0, length, core):
        end = min(start + core, length)
        yield start, end, max(0, start - halo), min(length, end + halo)


def encode_tiled(encoder: VGGEncoder, image: torch.Tensor, taps: tuple[str, ...], tile: int | None,
                 out_dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The encoder (keeping only `taps`) over overlapping tiles of `image` (sides multiples of the deepest tap's stride).

    With `tile=None` the whole image is encoded at once. The returned maps are complete.
    """
    if tile is None:
        return {k: v if out_dtype is None else v.to(out_dtype) for k, v in encoder(image, taps=taps).items()}
    last = max(taps, key=TAPS.index)
    align = ENCODER_STRIDE[last]
    n, _, height, width = image.shape
    if height % align or width % align:
        raise ValueError(f"image sides must be multiples of {align} to tile the encoder (got {height}x{width})")
    halo = encoder_halo(encoder, last)
    out: dict[str, torch.Tensor] = {}
    for y0, y1, iy0, iy1 in axis_spans(height, tile, halo, align):
        for x0, x1, ix0, ix1 in axis_spans(width, tile, halo, align):
            feats = encoder(image[:, :, iy0:iy1, ix0:ix1], taps=taps)
            for tap, value in feats.items():
                s = ENCODER_STRIDE[tap]
                if tap not in out:
                    out[tap] = value.new_empty((n, value.shape[1], height // s, width // s),
                                               dtype=out_dtype or value.dtype)
                out[tap][:, :, y0 // s:y1 // s, x0 // s:x1 // s] = \
                    value[:, :, (y0 - iy0) // s:(y1 - iy0) // s, (x0 - ix0) // s:(x1 - ix0) // s]
            del feats
    return out


def decode_tiled(head: Callable[[torch.Tensor], torch.Tensor], features: torch.Tensor, tile: int | None,
                 halo: int, stride: int = DECODER_STRIDE) -> torch.Tensor:
    """Run `head` (features -> image, `stride` x larger) over overlapping feature tiles.

    `tile` is in output pixels (None = all at once), `halo` in feature positions (see
    `decoder_halo`). The result is float32.
    """
    if tile is None:
        return head(features).float()
    n, _, height, width = features.shape
    core = max(1, tile // stride)
    out = torch.empty((n, 3, height * stride, width * stride), dtype=torch.float32, device=features.device)
    for y0, y1, iy0, iy1 in axis_spans(height, core, halo, 1):
        for x0, x1, ix0, ix1 in axis_spans(width, core, halo, 1):
            image = head(features[:, :, iy0:iy1, ix0:ix1])
            out[:, :, y0 * stride:y1 * stride, x0 * stride:x1 * stride] = \
                image[:, :, (y0 - iy0) * stride:(y1 - iy0) * stride, (x0 - ix0) * stride:(x1 - ix0) * stride].float()
            del image
    return out
