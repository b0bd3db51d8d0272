"""IEContraAST losses as plain functions (SPEC.md, the release's form and weights)."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F

from iecast.models.functional import mean_std, mean_variance_norm
from iecast.models.vgg import TAPS

Features = dict[str, torch.Tensor]


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`F.mse_loss(a, b)`, taken over channels_last maps as their NHWC views: the same pairs of
    elements, but F.mse_loss runs channels_last inputs on a slow strided path and returns an NCHW
    gradient that every later gradient op must convert (2-3x slower forward and backward)."""
    if a.dim() == 4 and not a.is_contiguous() and a.is_contiguous(memory_format=torch.channels_last):
        a, b = a.permute(0, 2, 3, 1), b.permute(0, 2, 3, 1)
    return F.mse_loss(a, b)


def content_loss(output_feats: Features, content_feats: Features, taps: tuple[str, ...] = ("relu4_1", "relu5_1")) -> torch.Tensor:
    """MSE between mean-variance-normalised features at relu4_1 and relu5_1."""
    return sum(mse(mean_variance_norm(output_feats[t]), mean_variance_norm(content_feats[t])) for t in taps)


def style_loss(output_feats: Features, style_feats: Features, taps: tuple[str, ...] = TAPS) -> torch.Tensor:
    """Sum over taps of MSE between channel means plus MSE between channel stds."""
    total = 0.0
    for t in taps:
        out_mean, out_std = mean_std(output_feats[t])
        sty_mean, sty_std = mean_std(style_feats[t])
        total = total + mse(out_mean, sty_mean) + mse(out_std, sty_std)
    return total


def identity_pixel_loss(id_content: torch.Tensor, content: torch.Tensor, id_style: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """L_id1 = MSE(D(T(c, c)), c) + MSE(D(T(s, s)), s)."""
    return mse(id_content, content) + mse(id_style, style)


def identity_feature_loss(id_content_feats: Features, content_feats: Features, id_style_feats: Features,
                          style_feats: Features, taps: tuple[str, ...] = TAPS) -> torch.Tensor:
    """L_id2 = sum over taps of MSE(phi(I_cc), phi(c)) + MSE(phi(I_ss), phi(s))."""
    return sum(mse(id_content_feats[t], content_feats[t]) + mse(id_style_feats[t], style_feats[t]) for t in taps)


def lsgan_loss(scores: list[torch.Tensor], target: float) -> torch.Tensor:
    """Least-squares GAN loss summed over the discriminator's scales."""
    return sum(((s.float() - target) ** 2).mean() for s in scores)


def discriminator_loss(real_scores: list[torch.Tensor], fake_scores: list[torch.Tensor]) -> torch.Tensor:
    """D side: real artworks towards 1, (detached) stylizations towards 0."""
    return lsgan_loss(real_scores, 1.0) + lsgan_loss(fake_scores, 0.0)


def adversarial_loss(fake_scores: list[torch.Tensor]) -> torch.Tensor:
    """G side: stylizations towards 1."""
    return lsgan_loss(fake_scores, 1.0)


def pair_ids(h: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Style and content ids of the 2h outputs of a contrastive batch.

    First half is (s_i, c_i), second half (s_i, c_{i+1 mod h}) (SPEC.md, batch construction).
    """
    if h < 2:
        raise ValueError(f"contrastive batches need h >= 2 (got h={h})")
    i = torch.arange(h, device=device)
    return torch.cat([i, i]), torch.cat([i, (i + 1) % h])


def contrastive_batch(contents: torch.Tensor, styles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """From h contents and h styles build the 2h (content, style) pairs of `pair_ids`."""
    if contents.shape[0] != styles.shape[0]:
        raise ValueError(f"need as many contents as styles (got {contents.shape[0]} and {styles.shape[0]})")
    h = contents.shape[0]
    style_ids, content_ids = pair_ids(h, contents.device)
    return contents[content_ids], styles[style_ids]


def contrastive_loss(embeddings: torch.Tensor, positive_ids: torch.Tensor, other_ids: torch.Tensor,
                     temperature: float = 0.2) -> torch.Tensor:
    """InfoNCE summed over all anchors.

    For anchor r the positive is the other sample with the same `positive_ids`; negatives are
    samples that share neither `positive_ids` nor `other_ids` with r. `embeddings` must be
    L2-normalised, shape (B, D).
    """
    logits = embeddings.float() @ embeddings.float().t() / temperature
    same_pos = positive_ids[:, None] == positive_ids[None, :]
    same_other = other_ids[:, None] == other_ids[None, :]
    eye = torch.eye(len(embeddings), dtype=torch.bool, device=embeddings.device)
    positive = same_pos & ~eye
    negative = ~same_pos & ~same_other
    allowed = positive | negative
    log_denominator = torch.logsumexp(logits.masked_fill(~allowed, float("-inf")), dim=1)
    positive_logit = logits.masked_fill(~positive, float("-inf")).logsumexp(dim=1)
    return (log_denominator - positive_logit).sum()


def style_contrastive_loss(style_embeddings: torch.Tensor, h: int, temperature: float = 0.2) -> torch.Tensor:
    """Outputs sharing a style attract; those sharing neither style nor content repel."""
    style_ids, content_ids = pair_ids(h, style_embeddings.device)
    return contrastive_loss(style_embeddings, style_ids, content_ids, temperature)


def content_contrastive_loss(content_embeddings: torch.Tensor, h: int, temperature: float = 0.2) -> torch.Tensor:
    """Outputs sharing a content attract; those sharing neither style nor content repel."""
    style_ids, content_ids = pair_ids(h, content_embeddings.device)
    return contrastive_loss(content_embeddings, content_ids, style_ids, temperature)


@dataclass  # not frozen: Fabric copies the config (which holds one) into spawned processes
class LossWeights:
    """Weights of the generator's loss terms; the defaults are the release's."""

    content: float = 1.0
    style: float = 1.0
    identity_pixel: float = 50.0
    identity_feature: float = 1.0
    contrastive_content: float = 0.3
    contrastive_style: float = 0.3
    adversarial: float = 5.0


def reconstruction_weights(weights: LossWeights) -> LossWeights:
    """`weights` with every term but the two identity (reconstruction) terms set to 0."""
    kept = {"identity_pixel", "identity_feature"}
    return replace(weights, **{f.name: 0.0 for f in fields(weights) if f.name not in kept})


def total_generator_loss(terms: dict[str, torch.Tensor], weights: LossWeights = LossWeights()) -> torch.Tensor:
    """Weighted sum of the terms named like `LossWeights`' fields; absent terms count as 0."""
    total = 0.0
    for field in fields(weights):
        if field.name in terms:
            total = total + getattr(weights, field.name) * terms[field.name]
    return total
