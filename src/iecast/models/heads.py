"""Projection heads for the contrastive losses (training only)."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class ProjectionHead(nn.Module):
    """Sum features over H and W, then Linear-ReLU-Linear and L2-normalise."""

    def __init__(self, in_features: int, hidden: int, out_features: int = 128) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, out_features))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(feats.sum(dim=(2, 3))), dim=1)


def style_head() -> ProjectionHead:
    """h_S: on relu3_1 (256 channels) -> 128."""
    return ProjectionHead(256, 128)


def content_head() -> ProjectionHead:
    """h_C: on relu4_1 (512 channels) -> 256 -> 128."""
    return ProjectionHead(512, 256)
