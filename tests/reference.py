"""An independent reference IEContraAST written from SPEC.md in the release's style:
plain nn.Sequential modules and the naive softmax(F^T G) attention. Used only by tests."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


def reference_vgg_normalised() -> nn.Sequential:
    """vgg_normalised up to relu5_1: module 0 is the 1x1 conv, then (pad, conv, relu) and pools."""
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
    plan = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512]
    c_in = 3
    for step in plan:
        if step == "M":
            layers.append(nn.MaxPool2d(2, 2, 0, ceil_mode=True))
        else:
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(c_in, step, 3), nn.ReLU()]
            c_in = step
    return nn.Sequential(*layers)


SLICES = ((0, 4), (4, 11), (11, 18), (18, 31), (31, 44))


def reference_encode(vgg: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    feats = []
    for start, end in SLICES:
        x = vgg[start:end](x)
        feats.append(x)
    return feats


def reference_decoder() -> nn.Sequential:
    return nn.Sequential(
        nn.ReflectionPad2d(1), nn.Conv2d(512, 256, 3), nn.ReLU(), nn.Upsample(scale_factor=2, mode="nearest"),
        nn.ReflectionPad2d(1), nn.Conv2d(256, 256, 3), nn.ReLU(),
        nn.ReflectionPad2d(1), nn.Conv2d(256, 256, 3), nn.ReLU(),
        nn.ReflectionPad2d(1), nn.Conv2d(256, 256, 3), nn.ReLU(),
        nn.ReflectionPad2d(1), nn.Conv2d(256, 128, 3), nn.ReLU(), nn.Upsample(scale_factor=2, mode="nearest"),
        nn.ReflectionPad2d(1), nn.Conv2d(128, 128, 3), nn.ReLU(),
        nn.ReflectionPad2d(1), nn.Conv2d(128, 64, 3), nn.ReLU(), nn.Upsample(scale_factor=2, mode="nearest"),
        nn.ReflectionPad2d(1), nn.Conv2d(64, 64, 3), nn.ReLU(),
        nn.ReflectionPad2d(1), nn.Conv2d(64, 3, 3),
    )


def reference_mvn(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    n, c = x.shape[:2]
    var = x.view(n, c, -1).var(dim=2) + eps
    std = var.sqrt().view(n, c, 1, 1)
    mean = x.view(n, c, -1).mean(dim=2).view(n, c, 1, 1)
    return (x - mean) / std


class ReferenceSANet(nn.Module):
    def __init__(self, c: int = 512) -> None:
        super().__init__()
        self.f, self.g, self.h, self.out_conv = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, content, style):
        F_ = self.f(reference_mvn(content))
        G = self.g(reference_mvn(style))
        H = self.h(style)
        b, c, hc, wc = F_.shape
        F_ = F_.view(b, c, -1).permute(0, 2, 1)
        G = G.view(b, c, -1)
        S = torch.softmax(torch.bmm(F_, G), dim=-1)
        O = torch.bmm(H.view(b, c, -1), S.permute(0, 2, 1)).view(b, c, hc, wc)
        return self.out_conv(O) + content


class ReferenceTransformer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.sanet4_1 = ReferenceSANet()
        self.sanet5_1 = ReferenceSANet()
        self.merge_conv_pad = nn.ReflectionPad2d(1)
        self.merge_conv = nn.Conv2d(512, 512, 3)

    def forward(self, c4, s4, c5, s5):
        up = F.interpolate(self.sanet5_1(c5, s5), scale_factor=2, mode="nearest")[..., : c4.shape[2], : c4.shape[3]]
        return self.merge_conv(self.merge_conv_pad(self.sanet4_1(c4, s4) + up))


def small_init_(module: nn.Module, gain: float = 1.0) -> None:
    """Random weights that keep activations O(1) through deep random stacks."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            nn.init.normal_(m.weight, std=gain * (2.0 / fan_in) ** 0.5)
            nn.init.uniform_(m.bias, -0.05, 0.05)
