"""The 3-scale PatchGAN discriminator used for the external (adversarial) loss."""
from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """conv4x4/2 (3->64), three conv4x4/2 + InstanceNorm blocks, then conv3x3 (512->1)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 64, 4, 2, 1), nn.LeakyReLU(0.2)]
        for c_in, c_out in ((64, 128), (128, 256), (256, 512)):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.InstanceNorm2d(c_out), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(512, 1, 3, 1, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class MultiScaleDiscriminator(nn.Module):
    """Three PatchGANs on the image at full, 1/2 and 1/4 scale; returns their score maps."""

    def __init__(self, scales: int = 3) -> None:
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator() for _ in range(scales))
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for i, disc in enumerate(self.scales):
            if i > 0:
                x = self.downsample(x)
            outputs.append(disc(x))
        return outputs
