"""The inference network: encoder -> transform -> decoder."""
from __future__ import annotations

import torch
from torch import nn

from iecast.models.decoder import Decoder
from iecast.models.transform import FeatureTransform
from iecast.models.vgg import VGGEncoder


class StyleTransferNetwork(nn.Module):
    """cs = decoder(transform(encoder(c), encoder(s))); the encoder stays frozen."""

    def __init__(self, encoder: VGGEncoder, transform: FeatureTransform, decoder: Decoder | None = None,
                 metadata: dict[str, str] | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.transform = transform
        self.decoder = decoder if decoder is not None else Decoder()
        self.metadata = dict(metadata or {})  # the header of the file it was loaded from, if any

    @property
    def encoder_id(self) -> str:
        """The encoder's weights name (`VGGEncoder.source`), as model files record it."""
        return self.encoder.source

    @property
    def needed_tap(self) -> str:
        """The deepest encoder tap the transform reads."""
        return self.transform.taps[-1]

    def encode(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.encoder(image, last=self.needed_tap)

    def forward(self, content: torch.Tensor, style: torch.Tensor, alpha: float | torch.Tensor = 1.0) -> torch.Tensor:
        """Stylize a batch; `alpha` blends T(c, s) with T(c, c) (the content reconstruction)."""
        content_feats = self.encode(content)
        feats = self.transform(content_feats, self.encode(style))
        if not (isinstance(alpha, float) and alpha == 1.0):
            feats = alpha * feats + (1 - alpha) * self.transform(content_feats, content_feats)
        return self.decoder(feats)
