"""The controls of one stylization, as one object checked in one place."""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import Sequence, Union

from iecast.inference.color import PRESERVE_COLOR_MODES
from iecast.errors import IecastError
from iecast.images import MAX_PIXELS

StyleSize = Union[int, None, str]  # pixels, None (keep), or "auto": the model's training scale for files/PIL, keep tensors


class IecastWarning(UserWarning):
    """Input that was fixed up rather than refused (mask resized or thresholded, weights normalised)."""


def normalise_style_weights(style_weights: Sequence[float] | None, count: int) -> list[float]:
    """Weights for `count` styles, summing to 1 (equal if None); a warning if they had to be rescaled."""
    if style_weights is None:
        return [1.0 / count] * count
    values = [float(v) for v in style_weights]
    if len(values) != count:
        raise IecastError(f"got {len(values)} style weights for {count} styles")
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise IecastError(f"style weights must be finite and non-negative (got {values})")
    total = sum(values)
    if total <= 0:
        raise IecastError("style weights sum to 0; give at least one positive weight")
    if abs(total - 1.0) > 1e-6:
        warnings.warn(f"style weights {values} sum to {total:g}, not 1; normalised to "
                      f"{[round(v / total, 4) for v in values]}", IecastWarning, stacklevel=4)
    return [v / total for v in values]


@dataclass(frozen=True)
class StylizeOptions:
    """What `Stylizer.stylize`, `stylize_video` and the CLI take besides the images.

    `checked(style_count, mask_count)` is the one place these rules live; it returns the
    options with the colour mode and blend weights normalised, and checking twice is harmless.
    """

    alpha: float = 1.0
    style_weights: Sequence[float] | None = None
    preserve_color: str | None = None
    content_size: int | None = None
    style_size: StyleSize = "auto"
    tile: int | str | None = "auto"
    max_pixels: int | None = MAX_PIXELS

    def checked(self, style_count: int, mask_count: int | None = None) -> "StylizeOptions":
        if not 0.0 <= self.alpha <= 1.0:
            raise IecastError(f"alpha must be in [0, 1] (got {self.alpha})")
        color = None if self.preserve_color in ("none", "") else self.preserve_color
        if color is not None and color not in PRESERVE_COLOR_MODES:
            raise IecastError(f"unknown colour mode {color!r}; expected one of {', '.join(PRESERVE_COLOR_MODES)}")
        if style_count == 0:
            raise IecastError("no style given")
        if mask_count is not None and self.style_weights is not None:
            raise IecastError("give either style weights or masks, not both")
        if mask_count is not None and mask_count != style_count:
            raise IecastError(f"got {mask_count} masks for {style_count} styles; give one mask per style")
        weights = None if mask_count is not None else tuple(normalise_style_weights(self.style_weights, style_count))
        return dataclasses.replace(self, preserve_color=color, style_weights=weights)
