"""The training model: the frozen encoder plus everything the generator step trains
(`IEContraASTModel`), and the GAN's two halves (`discriminator_step`, `adversarial_term`)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from iecast.models import (TRANSFORM_TAPS, Decoder, VGGEncoder, build_transform, content_head, style_head)
from iecast.training.losses import (LossWeights, adversarial_loss, content_contrastive_loss, content_loss,
                                    discriminator_loss, identity_feature_loss, identity_pixel_loss, pair_ids,
                                    style_contrastive_loss, style_loss)


class IEContraASTModel(nn.Module):
    """The frozen encoder plus everything the generator step trains.

    `forward(contents, styles)` takes h contents and h styles, builds the 2h contrastive pairs
    and returns the stylizations and every generator loss term except the adversarial one
    (which needs the discriminator). Heads exist only when their loss weight is non-zero.
    """

    def __init__(self, encoder: VGGEncoder, transform: str, weights: LossWeights, temperature: float = 0.2) -> None:
        super().__init__()
        self.encoder = encoder
        self.transform = build_transform(transform)
        self.decoder = Decoder()
        self.style_head = style_head() if weights.contrastive_style else None
        self.content_head = content_head() if weights.contrastive_content else None
        self.weights = weights
        self.temperature = temperature

    def forward(self, contents: torch.Tensor, styles: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        h = contents.shape[0]
        style_ids, content_ids = pair_ids(h, contents.device)
        with torch.no_grad():
            c_feats, s_feats = self.encoder(contents), self.encoder(styles)
        pair_c = {k: v[content_ids] for k, v in c_feats.items()}
        pair_s = {k: v[style_ids] for k, v in s_feats.items()}
        identity = bool(self.weights.identity_pixel or self.weights.identity_feature)
        if identity:  # I_cc and I_ss ride with the 2h stylizations: one transform, decoder and encoder pass over 4h
            both = {k: torch.cat([c_feats[k], s_feats[k]]) for k in TRANSFORM_TAPS}
            images = self.decoder(self.transform({k: torch.cat([pair_c[k], both[k]]) for k in TRANSFORM_TAPS},
                                                 {k: torch.cat([pair_s[k], both[k]]) for k in TRANSFORM_TAPS}))
            cs, id_c, id_s = images.split([2 * h, h, h])
            # split, not three slices: its backward writes each tap's gradient once, where every
            # slice's would zero-fill a full-size buffer and the three would then be summed
            parts = {k: v.split([2 * h, h, h]) for k, v in self.encoder(images).items()}
            cs_feats, id_c_feats, id_s_feats = ({k: v[i] for k, v in parts.items()} for i in range(3))
        else:
            cs = self.decoder(self.transform(pair_c, pair_s))
            cs_feats = self.encoder(cs)
        terms = {"content": content_loss(cs_feats, pair_c), "style": style_loss(cs_feats, pair_s)}
        if identity:
            terms["identity_pixel"] = identity_pixel_loss(id_c, contents, id_s, styles)
            terms["identity_feature"] = identity_feature_loss(id_c_feats, c_feats, id_s_feats, s_feats)
        if self.style_head is not None:
            terms["contrastive_style"] = style_contrastive_loss(self.style_head(cs_feats["relu3_1"]), h, self.temperature)
        if self.content_head is not None:
            terms["contrastive_content"] = content_contrastive_loss(self.content_head(cs_feats["relu4_1"]), h, self.temperature)
        return cs, terms


def discriminator_step(discriminator: nn.Module, optimizer: torch.optim.Optimizer, styles: torch.Tensor,
                       stylizations: torch.Tensor, backward: Callable[[torch.Tensor], None] = torch.Tensor.backward,
                       check: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
    """The D step: artworks towards 1 and the detached stylizations towards 0, in one batched pass
    (InstanceNorm is per sample, so it equals two passes); `check` sees the loss before backward."""
    scores = discriminator(torch.cat([styles, stylizations.detach()]))
    n = styles.shape[0]
    loss = discriminator_loss([x[:n] for x in scores], [x[n:] for x in scores])
    if check is not None:
        check(loss)
    optimizer.zero_grad(set_to_none=True)
    backward(loss)
    optimizer.step()
    return loss


def adversarial_term(discriminator: nn.Module, stylizations: torch.Tensor) -> torch.Tensor:
    """The G side of the GAN through a frozen D: gradients reach the stylizations, and no time
    goes to D weight gradients that the next D step would discard."""
    discriminator.requires_grad_(False)
    try:
        return adversarial_loss(discriminator(stylizations))
    finally:
        discriminator.requires_grad_(True)
