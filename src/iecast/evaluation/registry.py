"""The per-pair metrics of the evaluation harness, in one registry.

Each `PairMetric` has a name (the report's column and key), how to compute it from one stylized pair,
whether lower is better (the report's arrow) and a description (report.json's `metrics` and report.md's
"Metrics" list). `iecast.evaluation.runner.pair_metrics` computes every entry of `PAIR_METRICS`, in
order, and the report files take their columns, arrows and descriptions from it, so adding a per-pair
metric is adding one entry here.

A name or description may hold `{perceptual}`, replaced by the perceptual distance's name
(`perceptual-vgg16-offline`, `lpips-alex`): values from different distances are not comparable, so
the distance is part of the column's name.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import torch

from iecast.evaluation import metrics
from iecast.models.vgg import VGGEncoder
from iecast.training import losses

PERCEPTUAL = "{perceptual}"  # placeholder for the perceptual distance's name in a metric's name or description


class InputFeatures:
    """Encoder features and perceptual features of the inputs, computed once each."""

    def __init__(self, encoder: VGGEncoder, distance: metrics.PerceptualDistance) -> None:
        self.encoder, self.distance = encoder, distance
        self.device = next(encoder.parameters()).device
        self.cache: dict[tuple[str, str], object] = {}

    def get(self, kind: str, name: str, image: torch.Tensor):
        key = (kind, name)
        if key not in self.cache:
            with torch.no_grad():
                if kind == "vgg":
                    self.cache[key] = self.encoder(image.to(self.device))
                elif kind == "gram":
                    self.cache[key] = {t: metrics.gram_matrix(f) for t, f in self.get("vgg", name, image).items()}
                else:
                    self.cache[key] = self.distance.features(image)
        return self.cache[key]


class Pair:
    """One stylized pair as a metric sees it: the output (already at the content's size), its inputs,
    and their features (the inputs' cached across pairs in `feats`, the output's computed once per pair)."""

    def __init__(self, output: torch.Tensor, content: torch.Tensor, content_name: str, style: torch.Tensor,
                 style_name: str, feats: InputFeatures) -> None:
        self.output, self.content, self.style = output, content, style
        self.content_name, self.style_name, self.feats = content_name, style_name, feats

    @cached_property
    def output_features(self) -> dict[str, torch.Tensor]:
        return self.feats.encoder(self.output.to(self.feats.device))

    @property
    def content_features(self) -> dict[str, torch.Tensor]:
        return self.feats.get("vgg", self.content_name, self.content)

    @property
    def style_features(self) -> dict[str, torch.Tensor]:
        return self.feats.get("vgg", self.style_name, self.style)

    @property
    def style_grams(self) -> dict[str, torch.Tensor]:
        return self.feats.get("gram", self.style_name, self.style)

    @property
    def content_perceptual(self) -> object:
        return self.feats.get("perc", self.content_name, self.content)


@dataclass(frozen=True)
class PairMetric:
    """A per-pair metric: its column `name`, `compute(pair) -> float`, its direction and its description."""

    name: str
    compute: Callable[[Pair], float]
    lower_is_better: bool
    description: str

    def column(self, perceptual: str) -> str:
        """The name in a report whose perceptual distance is called `perceptual`."""
        return self.name.replace(PERCEPTUAL, perceptual)

    def describe(self, perceptual: str) -> str:
        return self.description.replace(PERCEPTUAL, perceptual)


def _perceptual_content(pair: Pair) -> float:
    distance = pair.feats.distance
    return float(distance.distance(distance.features(pair.output), pair.content_perceptual)[0])


PAIR_METRICS: dict[str, PairMetric] = {m.name: m for m in (
    PairMetric("content_loss", lambda p: float(losses.content_loss(p.output_features, p.content_features)), True,
               "SPEC.md content loss: MSE of mean-variance-normalised relu4_1 + relu5_1 (output vs content)"),
    PairMetric("style_loss", lambda p: float(losses.style_loss(p.output_features, p.style_features)), True,
               "SPEC.md style loss: channel mean + std MSE over relu1_1..relu5_1 (output vs style)"),
    PairMetric("gram_style_loss", lambda p: float(metrics.gram_loss_from_features(p.output_features, p.style_grams)), True,
               "Gatys et al. Gram-matrix MSE over relu1_1..relu5_1, Gram = F F^T / (H W) (output vs style)"),
    PairMetric("ssim", lambda p: metrics.ssim(p.output, p.content), False,
               "SSIM of grayscale output and content (scikit-image, Gaussian window sigma 1.5)"),
    PairMetric(f"{PERCEPTUAL}_content", _perceptual_content, True, f"{PERCEPTUAL} distance between output and content"),
)}


def descriptions(perceptual: str) -> dict[str, str]:
    """{column: description} of every registered metric, in order (report.json's `metrics`)."""
    return {m.column(perceptual): m.describe(perceptual) for m in PAIR_METRICS.values()}


def directions(perceptual: str) -> dict[str, bool]:
    """{column: lower is better} of every registered metric, in order."""
    return {m.column(perceptual): m.lower_is_better for m in PAIR_METRICS.values()}


def fixed_names() -> list[str]:
    """The registered names that do not depend on the perceptual distance (every report has these columns)."""
    return [m.name for m in PAIR_METRICS.values() if PERCEPTUAL not in m.name]
