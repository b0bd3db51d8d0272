"""The frozen VGG encoder, tapped at relu1_1 ... relu5_1, owning its input normalisation."""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn
import torch.nn.functional as F

import iecast
from iecast.models.functional import pad

TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
TAP_CHANNELS = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512, "relu5_1": 512}

# Convolutions per block, up to conv5_1 (the last tap); the rest of block 5 is never used.
BLOCK_DEPTHS = {"vgg19": (2, 2, 4, 4, 1), "vgg16": (2, 2, 3, 3, 1)}
BLOCK_WIDTHS = (64, 128, 256, 512, 512)

Arch = Literal["vgg19", "vgg16"]
Padding = Literal["reflect", "zeros"]


def conv_names(arch: Arch) -> list[str]:
    """Names of the convolutions up to conv5_1, in order: conv1_1, conv1_2, conv2_1, ..."""
    return [f"conv{b + 1}_{i + 1}" for b, depth in enumerate(BLOCK_DEPTHS[arch]) for i in range(depth)]


class VGGEncoder(nn.Module):
    """VGG-16/19 features returning the five taps as a dict; never trained.

    The input is RGB in [0, 1]. A fixed affine map (`input_weight`, `input_bias`, a 1x1
    convolution) turns it into what the weights expect, so callers never normalise.
    `padding="reflect"` is the style-transfer convention (SPEC.md); `"zeros"` reproduces the
    original classifiers (torchvision, Keras). Pooling is 2x2/2 with ceil_mode.
    """

    def __init__(self, arch: Arch = "vgg19", padding: Padding = "reflect", source: str = "unknown") -> None:
        super().__init__()
        self.source = source  # the weights' name in `iecast.weights.ENCODERS`, recorded in model files
        if arch not in BLOCK_DEPTHS:
            raise ValueError(f"unknown VGG architecture {arch!r}; expected one of {sorted(BLOCK_DEPTHS)}")
        self.arch = arch
        self.padding = padding
        self.register_buffer("input_weight", torch.eye(3))
        self.register_buffer("input_bias", torch.zeros(3))
        self.convs = nn.ModuleDict()
        in_ch = 3
        for block, depth in enumerate(BLOCK_DEPTHS[arch]):
            for i in range(depth):
                self.convs[f"conv{block + 1}_{i + 1}"] = nn.Conv2d(in_ch, BLOCK_WIDTHS[block], 3)
                in_ch = BLOCK_WIDTHS[block]
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGGEncoder":
        """The encoder is frozen: it always stays in eval mode."""
        return super().train(False)

    @classmethod
    def from_source(cls, name: str, path: str | None = None, padding: Padding = "reflect") -> "VGGEncoder":
        """The encoder with the named source's weights (`iecast.weights.ENCODERS`; `path` for a local
        file). Resolved through the package facade at call time, so `models` never imports `weights`."""
        return iecast.load_encoder(name, path, padding)

    def normalize_input(self, x: torch.Tensor) -> torch.Tensor:
        """Map RGB [0, 1] to the weights' input convention."""
        weight = self.input_weight.to(x.dtype).view(3, 3, 1, 1)
        return F.conv2d(x, weight, self.input_bias.to(x.dtype))

    def _conv(self, name: str, x: torch.Tensor) -> torch.Tensor:
        mode = "reflect" if self.padding == "reflect" else "constant"
        return F.relu(self.convs[name](pad(x, (1, 1, 1, 1), mode)), inplace=True)  # the conv's fresh output

    def forward(self, x: torch.Tensor, last: str = "relu5_1", taps: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
        """Return {tap: features} for relu1_1 up to `last` (inclusive), or only `taps` (then
        the pass stops at the deepest of them, and maps not kept are freed as it goes)."""
        if taps is not None:
            last = max(taps, key=TAPS.index)
        if last not in TAPS:
            raise ValueError(f"unknown tap {last!r}; expected one of {TAPS}")
        feats: dict[str, torch.Tensor] = {}
        x = self.normalize_input(x)
        for block, depth in enumerate(BLOCK_DEPTHS[self.arch]):
            if block > 0:
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            for i in range(depth):
                x = self._conv(f"conv{block + 1}_{i + 1}", x)
                if i == 0:
                    tap = f"relu{block + 1}_1"
                    if taps is None or tap in taps:
                        feats[tap] = x
                    if tap == last:
                        return feats
        return feats
