"""Gatys et al. (2016) style transfer by image optimisation, with our encoder: a baseline needing no training.

The image is optimised for a fixed number of steps from a fixed start (the content, or seeded
noise), so a run is reproducible. L-BFGS (as Gatys et al.) is the default: far better per
encoder pass than Adam on pixels, which at few steps leaves high-frequency noise. Content
term: MSE of relu4_1 features; style term: Gram-matrix MSE summed over relu1_1 ... relu5_1
(`iecast.evaluation.metrics.gram_matrix`). L-BFGS does not keep the image in [0, 1] between steps; the
result is clamped at the end (and its objective measured after clamping).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from iecast.errors import IecastError
from iecast.evaluation.metrics import gram_loss_from_features, gram_matrix
from iecast.models.vgg import TAPS, VGGEncoder

CONTENT_TAP = "relu4_1"
DEFAULT_LEARNING_RATES = {"lbfgs": 1.0, "adam": 0.03}


@dataclass(frozen=True)
class GatysConfig:
    """Optimisation settings; the defaults suit the normalised offline VGG-16 at 256-512 px."""

    steps: int = 50
    optimizer: str = "lbfgs"
    learning_rate: float | None = None
    content_weight: float = 1.0
    style_weight: float = 10.0
    init: str = "content"
    seed: int = 0
    style_taps: tuple[str, ...] = field(default=TAPS)

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise IecastError(f"Gatys steps must be >= 0 (got {self.steps})")
        if self.init not in ("content", "noise"):
            raise IecastError(f"Gatys init must be 'content' or 'noise' (got {self.init!r})")
        if self.optimizer not in DEFAULT_LEARNING_RATES:
            raise IecastError(f"Gatys optimizer must be one of {', '.join(DEFAULT_LEARNING_RATES)} (got {self.optimizer!r})")
        if self.learning_rate is None:
            object.__setattr__(self, "learning_rate", DEFAULT_LEARNING_RATES[self.optimizer])


def gatys_objective(image_feats: dict[str, torch.Tensor], content_target: torch.Tensor,
                    style_grams: dict[str, torch.Tensor], config: GatysConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(content term, style term) of the image being optimised, unweighted."""
    content_term = F.mse_loss(image_feats[CONTENT_TAP], content_target)
    style_term = gram_loss_from_features(image_feats, style_grams, config.style_taps)
    return content_term, style_term


def gatys_stylize(content: torch.Tensor, style: torch.Tensor, encoder: VGGEncoder,
                  config: GatysConfig = GatysConfig()) -> tuple[torch.Tensor, list[float]]:
    """Optimise an image (1, 3, H, W) in [0, 1] to match `content`'s relu4_1 and `style`'s Grams.

    Returns (image, the weighted objective at every evaluation, then of the returned image).
    """
    if content.dim() != 4 or style.dim() != 4 or content.shape[0] != 1 or style.shape[0] != 1:
        raise IecastError(f"Gatys takes one content and one style image (got shapes {tuple(content.shape)} and {tuple(style.shape)})")
    with torch.no_grad():
        content_target = encoder(content, last=CONTENT_TAP)[CONTENT_TAP]
        style_grams = {t: gram_matrix(f) for t, f in encoder(style).items() if t in config.style_taps}
    generator = torch.Generator().manual_seed(config.seed)
    if config.init == "content":
        start = content.detach().clone()
    else:
        start = torch.rand(content.shape, generator=generator).to(content)
    image = start.requires_grad_(True)
    deepest = max(set(config.style_taps) | {CONTENT_TAP}, key=TAPS.index)
    history: list[float] = []

    def objective() -> torch.Tensor:
        content_term, style_term = gatys_objective(encoder(image, last=deepest), content_target, style_grams, config)
        return config.content_weight * content_term + config.style_weight * style_term

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = objective()
        history.append(float(loss.detach()))
        loss.backward()
        return loss

    if config.steps > 0 and config.optimizer == "lbfgs":
        optimizer = torch.optim.LBFGS([image], lr=config.learning_rate, max_iter=config.steps, history_size=20,
                                      line_search_fn=None)
        optimizer.step(closure)
    elif config.steps > 0:
        optimizer = torch.optim.Adam([image], lr=config.learning_rate)
        for _ in range(config.steps):
            optimizer.step(closure)
            with torch.no_grad():
                image.clamp_(0, 1)
    with torch.no_grad():
        image.clamp_(0, 1)
        history.append(float(objective()))
    return image.detach(), history


class GatysStylizer:
    """`stylize(content, style)` for tensors, like `iecast.Stylizer`, by optimisation."""

    def __init__(self, encoder: VGGEncoder, config: GatysConfig = GatysConfig()) -> None:
        self.encoder = encoder
        self.config = config

    @property
    def encoder_id(self) -> str:
        return self.encoder.source

    def stylize(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            return gatys_stylize(content, style, self.encoder, self.config)[0]
