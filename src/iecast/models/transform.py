"""Feature transforms: the SANet style-attention transform (IEContraAST) and AdaIN (baseline)."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from iecast.models.functional import adaptive_instance_norm, mean_std, mean_variance_norm, pad

TRANSFORM_TAPS = ("relu4_1", "relu5_1")  # the encoder taps any transform reads (training encodes these)
QUERY_CHUNK = 16384  # content positions attended at once at inference: bounds the transform's memory


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
        return _positions_last(self.g(_wide_mvn(style))), _positions_last(self.h(style))

    def attend(self, content: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Content features plus out_conv(attention output), same shape as `content`."""
        return self.attend_query(content, self.f(_wide_mvn(content)), keys, values)

    def attend_query(self, content: torch.Tensor, query_map: torch.Tensor, keys: torch.Tensor,
                     values: torch.Tensor) -> torch.Tensor:
        """`attend` with the query map f(mvn(content)) given (normalised over more than `content`)."""
        n, c, height, width = content.shape
        query = _positions_last(query_map)
        keys, values = keys.to(query.dtype), values.to(query.dtype)
        if keys.shape[0] != n:
            keys, values = keys.expand(n, -1, -1), values.expand(n, -1, -1)
        out = F.scaled_dot_product_attention(query.unsqueeze(1), keys.unsqueeze(1), values.unsqueeze(1), scale=1.0)
        out = out.squeeze(1).reshape(n, height, width, c).permute(0, 3, 1, 2)
        return content + self.out_conv(out)

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.attend(content, *self.style_keys_values(style))


class FeatureTransform(nn.Module):
    """What every transform implements; the stylizer, training and export only use this.

    - `kind`: the name in `TRANSFORMS` and in model files; `taps`: the encoder taps it reads,
      deepest last; `head_convs`: 3x3 convolutions in `head`, which widen the decoder's tiling halo.
    - `prepare_style(style_feats)`: what it needs from a style, computed once per style.
    - `mix(content_feats, weighted_styles, chunk)`: sum_i w_i * T'(c, s_i) in fp32, where T' is the
      transform before its `head`; weights are floats or (N, 1, h, w) maps. `chunk` bounds the
      content positions attended at once (None: all), so no (content x style) matrix is held.
    - `head(mixed)`: the linear part after the blend (so blending before it equals blending T).
    """

    kind = ""
    taps: tuple[str, ...] = ()
    head_convs = 0

    def prepare_style(self, style_feats: dict[str, torch.Tensor]) -> dict:
        raise NotImplementedError

    def mix(self, content_feats: dict[str, torch.Tensor], weighted_styles: list, chunk: int | None = None) -> torch.Tensor:
        raise NotImplementedError

    def head(self, mixed: torch.Tensor) -> torch.Tensor:
        return mixed

    def apply_style(self, content_feats: dict[str, torch.Tensor], prepared: dict) -> torch.Tensor:
        """T(c, s) for one prepared style; relu4_1-shaped features in the content features' dtype."""
        return self.head(self.mix(content_feats, [(1.0, prepared)])).to(content_feats["relu4_1"].dtype)

    def forward(self, content_feats: dict[str, torch.Tensor], style_feats: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.apply_style(content_feats, self.prepare_style(style_feats))


TRANSFORMS: dict[str, type[FeatureTransform]] = {}


def register_transform(cls: type[FeatureTransform]) -> type[FeatureTransform]:
    """Class decorator: make a transform buildable by its `kind` (model files name it)."""
    TRANSFORMS[cls.kind] = cls
    return cls


def _wide(x: torch.Tensor) -> torch.Tensor:
    """`x` in fp32 if it is narrower (bf16/fp16 under autocast); float64 stays float64."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _wide_mvn(x: torch.Tensor) -> torch.Tensor:
    """mvn(x) with its statistics in at least fp32, returned in x's dtype (a no-op cast in fp32)."""
    return mean_variance_norm(_wide(x)).to(x.dtype)


def _weighted(term: torch.Tensor, weight: float | torch.Tensor, rows: slice, cols: slice = slice(None)) -> torch.Tensor:
    return term * (weight[:, :, rows, cols] if isinstance(weight, torch.Tensor) else weight)


@register_transform
class SANetTransform(FeatureTransform):
    """Two style-attention blocks on relu4_1 and relu5_1, merged by a 3x3 convolution."""

    kind = "sanet"
    taps = ("relu4_1", "relu5_1")
    head_convs = 1

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

    def mix(self, content_feats: dict[str, torch.Tensor], weighted_styles: list, chunk: int | None = None) -> torch.Tensor:
        """Both attentions for every style, in bands of content rows (cut across too where a row
        alone is over `chunk`, as in a long strip); normalisation statistics are over the whole
        maps, so every band equals the same positions of the unbanded result."""
        c4, c5 = content_feats["relu4_1"], content_feats["relu5_1"]
        mean4, std4 = mean_std(_wide(c4))
        mean5, std5 = mean_std(_wide(c5))
        if chunk is None:
            return self._mix_rows(c4, c5, (mean4, std4, mean5, std5), weighted_styles, slice(None))
        mixed = torch.empty(c4.shape, dtype=_wide(c4[:0]).dtype, device=c4.device)
        height, width = c4.shape[-2:]
        rows = max(2, (chunk // max(1, width)) // 2 * 2)
        cols = width if 2 * width <= chunk else max(2, chunk // 4 * 2)  # bands start on even rows and columns
        for r0 in range(0, height, rows):
            for c0 in range(0, width, cols):
                band, across = slice(r0, min(height, r0 + rows)), slice(c0, min(width, c0 + cols))
                mixed[:, :, band, across] = self._mix_rows(c4, c5, (mean4, std4, mean5, std5), weighted_styles,
                                                           band, across)
        return mixed

    def _mix_rows(self, c4: torch.Tensor, c5: torch.Tensor, stats: tuple, weighted_styles: list, band: slice,
                  across: slice = slice(None)) -> torch.Tensor:
        """`mix` for relu4_1 rows `band`, columns `across` (and the relu5_1 positions they upsample from)."""
        mean4, std4, mean5, std5 = stats
        if band == slice(None):
            q4, q5 = c4, c5
        else:
            half = slice(None) if across == slice(None) else slice(across.start // 2, (across.stop + 1) // 2)
            q4, q5 = c4[:, :, band, across], c5[:, :, band.start // 2:(band.stop + 1) // 2, half]
        query4 = self.sanet4_1.f(((_wide(q4) - mean4) / std4).to(q4.dtype))
        query5 = self.sanet5_1.f(((_wide(q5) - mean5) / std5).to(q5.dtype))
        acc = None
        for weight, prepared in weighted_styles:
            out4 = self.sanet4_1.attend_query(q4, query4, *prepared["relu4_1"])
            out5 = self.sanet5_1.attend_query(q5, query5, *prepared["relu5_1"])
            up5 = F.interpolate(_wide(out5), size=out4.shape[-2:], mode="nearest")  # band starts on an even row and column
            term = _weighted(_wide(out4) + up5, weight, band, across)
            acc = term if acc is None else acc.add_(term)
        return acc

    def head(self, mixed: torch.Tensor) -> torch.Tensor:
        mixed = mixed.to(self.merge_conv.weight.dtype)  # mix blends in fp32; fp16/bf16 weights need their dtype
        return self.merge_conv(pad(mixed, (1, 1, 1, 1), "reflect"))


@register_transform
class AdaINTransform(FeatureTransform):
    """AdaIN at relu4_1 (Huang & Belongie 2017): the parameter-free baseline transform."""

    kind = "adain"
    taps = ("relu4_1",)

    def prepare_style(self, style_feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"relu4_1": style_feats["relu4_1"]}

    def mix(self, content_feats: dict[str, torch.Tensor], weighted_styles: list, chunk: int | None = None) -> torch.Tensor:
        """Per-position arithmetic: no chunking needed."""
        out = None
        for weight, prepared in weighted_styles:
            term = _weighted(_wide(adaptive_instance_norm(content_feats["relu4_1"], prepared["relu4_1"])), weight, slice(None))
            out = term if out is None else out + term
        return out


def build_transform(kind: str) -> FeatureTransform:
    """The transform named `kind` (a key of `TRANSFORMS`: 'sanet', 'adain', ...)."""
    if kind not in TRANSFORMS:
        raise ValueError(f"unknown transform {kind!r}; expected one of {sorted(TRANSFORMS)}")
    return TRANSFORMS[kind]()
