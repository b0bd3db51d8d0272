"""Feature transforms: the SANet style-attention transform (IEContraAST) and AdaIN (baseline)."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from iecast.functional import adaptive_instance_norm, mean_variance_norm

TRANSFORM_TAPS = ("relu4_1", "relu5_1")  # the encoder taps any transform reads


def _positions_last(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, H*W, C), contiguous in C so SDPA takes its memory-efficient path."""
    n, c = x.shape[:2]
    return x.permute(0, 2, 3, 1).reshape(n, -1, c).contiguous()


class StyleAttention(nn.Module):
    """One SANet block: content positions attend over style positions (scale 1, no 1/sqrt(d)).

    Computed with `scaled_dot_product_attention`, so the (content x style) attention matrix
    is never materialised. `style_keys_values` lets a caller compute the style side once and
    reuse it for many contents (video frames, batches).
    """

    def __init__(self, channels: int = 512) -> None:
        super().__init__()
        self.f = nn.Conv2d(channels, channels, 1)
        self.g = nn.Conv2d(channels, channels, 1)
        self.h = nn.Conv2d(channels, channels, 1)
        self.out_conv = nn.Conv2d(channels, channels, 1)

    def style_keys_values(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys g(mvn(Fs)) and values h(Fs), each (N, positions, C)."""
        return _positions_last(self.g(mean_variance_norm(style))), _positions_last(self.h(style))

    def attend(self, content: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Content features plus out_conv(attention output), same shape as `content`."""
        n, c, height, width = content.shape
        query = _positions_last(self.f(mean_variance_norm(content)))
        if keys.shape[0] != n:
            keys, values = keys.expand(n, -1, -1), values.expand(n, -1, -1)
        out = F.scaled_dot_product_attention(query.unsqueeze(1), keys.unsqueeze(1), values.unsqueeze(1), scale=1.0)
        out = out.squeeze(1).reshape(n, height, width, c).permute(0, 3, 1, 2)
        return content + self.out_conv(out)

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.attend(content, *self.style_keys_values(style))


class SANetTransform(nn.Module):
    """Two style-attention blocks on relu4_1 and relu5_1, merged by a 3x3 convolution."""

    kind = "sanet"

    def __init__(self, channels: int = 512) -> None:
        super().__init__()
        self.sanet4_1 = StyleAttention(channels)
        self.sanet5_1 = StyleAttention(channels)
        self.merge_conv = nn.Conv2d(channels, channels, 3)

    def prepare_style(self, style_feats: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Everything the transform needs from a style, computed once."""
        return {
            "relu4_1": self.sanet4_1.style_keys_values(style_feats["relu4_1"]),
            "relu5_1": self.sanet5_1.style_keys_values(style_feats["relu5_1"]),
        }

    def apply_style(self, content_feats: dict[str, torch.Tensor], prepared: dict) -> torch.Tensor:
        """Transform content features with a prepared style; returns relu4_1-shaped features."""
        c4 = content_feats["relu4_1"]
        out4 = self.sanet4_1.attend(c4, *prepared["relu4_1"])
        out5 = self.sanet5_1.attend(content_feats["relu5_1"], *prepared["relu5_1"])
        merged = out4 + F.interpolate(out5, size=c4.shape[-2:], mode="nearest")
        return self.merge_conv(F.pad(merged, (1, 1, 1, 1), mode="reflect"))

    def forward(self, content_feats: dict[str, torch.Tensor], style_feats: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.apply_style(content_feats, self.prepare_style(style_feats))


class AdaINTransform(nn.Module):
    """AdaIN at relu4_1 (Huang & Belongie 2017): the parameter-free baseline transform."""

    kind = "adain"

    def prepare_style(self, style_feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"relu4_1": style_feats["relu4_1"]}

    def apply_style(self, content_feats: dict[str, torch.Tensor], prepared: dict) -> torch.Tensor:
        return adaptive_instance_norm(content_feats["relu4_1"], prepared["relu4_1"])

    def forward(self, content_feats: dict[str, torch.Tensor], style_feats: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.apply_style(content_feats, self.prepare_style(style_feats))


TRANSFORMS = {"sanet": SANetTransform, "adain": AdaINTransform}


def build_transform(kind: str) -> nn.Module:
    """The transform named `kind` ('sanet' or 'adain')."""
    if kind not in TRANSFORMS:
        raise ValueError(f"unknown transform {kind!r}; expected one of {sorted(TRANSFORMS)}")
    return TRANSFORMS[kind]()
