"""Many same-size contents with the same prepared styles, stylized in batches (one forward per batch).

A batch runs the encoder, the transform and the decoder once on the stacked contents; every
item gives the same result as on its own (up to float rounding: convolutions and attention may
pick other kernels for another batch size). The limits stay those of one image: a batch of N
contents counts N times their padded pixels against `max_pixels`, and (with `tile='auto'`)
against AUTO_TILE_ABOVE, the largest image that runs whole, so a batch never needs more memory
than one image the per-image path would run untiled. What the batched path does not do (tiles,
masks, colour preservation) goes through the per-image path: batching changes speed, not results.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from iecast.inference.options import StylizeOptions
from iecast.inference.resize import padded_shape
from iecast.inference.tiling import AUTO_TILE_ABOVE, choose_tile

AUTO_CUDA_BATCH = 4  # a GPU is underused by one small image; 4 x 512^2 is ~1 MP, far below any GPU's memory


def default_batch_size(device: torch.device) -> int:
    """1 on CPU (one image already keeps every core busy), AUTO_CUDA_BATCH on CUDA."""
    return AUTO_CUDA_BATCH if torch.device(device).type == "cuda" else 1


def batch_cap(height: int, width: int, options: StylizeOptions, batch_size: int) -> int:
    """How many (height, width) contents may run in one batch: at most `batch_size`, and so many that
    their padded pixels together stay within `max_pixels` (and, with tile='auto', within AUTO_TILE_ABOVE,
    so the batch is no larger than one image that runs untiled). 1 where the image needs tiles."""
    if batch_size <= 1 or choose_tile(height, width, options.tile) is not None:
        return 1
    pixels = padded_shape(height, width)[0] * padded_shape(height, width)[1]
    limits = [options.max_pixels] if options.max_pixels is not None else []
    if options.tile == "auto":
        limits.append(AUTO_TILE_ABOVE)
    return max(1, min([batch_size] + [limit // pixels for limit in limits]))


def batchable(options: StylizeOptions, has_masks: bool = False) -> bool:
    """Whether these (checked) options can use the batched path at all: no masks, no colour preservation."""
    return not has_masks and options.preserve_color is None


def batches(contents: Sequence[torch.Tensor], options: StylizeOptions, batch_size: int) -> list[list[int]]:
    """Indices of `contents` in groups to run together: equal sizes, each group within `batch_cap`
    (a group of one runs through the per-image path). Groups are ordered by their first item."""
    groups: dict[tuple[int, int], list[list[int]]] = {}
    order: list[list[int]] = []
    for i, content in enumerate(contents):
        height, width = content.shape[-2:]
        cap = batch_cap(height, width, options, batch_size) if batchable(options) else 1
        open_groups = groups.setdefault((height, width), [])
        if not open_groups or len(open_groups[-1]) >= cap:
            open_groups.append([])
            order.append(open_groups[-1])
        open_groups[-1].append(i)
    return order


def stylize_batch(run_batch: Callable[[torch.Tensor], torch.Tensor], run_one: Callable[[torch.Tensor], torch.Tensor],
                  contents: Sequence[torch.Tensor], options: StylizeOptions, batch_size: int) -> list[torch.Tensor]:
    """Every content stylized: groups of several through `run_batch` ((N, 3, H, W) -> (N, 3, H, W)),
    single ones through `run_one`; results in the order of `contents`, each (1, 3, H, W)."""
    stacked = [c if c.dim() == 4 else c.unsqueeze(0) for c in contents]
    results: list[torch.Tensor | None] = [None] * len(stacked)
    for group in batches(stacked, options, batch_size):
        if len(group) == 1:
            results[group[0]] = run_one(stacked[group[0]])
            continue
        out = run_batch(torch.cat([stacked[i] for i in group]))
        for k, i in enumerate(group):
            results[i] = out[k:k + 1].contiguous()
        del out
    return results
