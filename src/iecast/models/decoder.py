"""The decoder: a mirror of the encoder up to relu4_1, from features back to RGB."""
from __future__ import annotations

import torch
from torch import nn

from iecast.models.functional import pad, upsample_reflect_conv3x3

# (in, out) per 3x3 conv; "up" is nearest x2 upsampling. The last conv has no ReLU.
DECODER_PLAN = (
    (512, 256), "up", (256, 256), (256, 256), (256, 256), (256, 128), "up",
    (128, 128), (128, 64), "up", (64, 64), (64, 3),
)


class Decoder(nn.Module):
    """relu4_1 features (N, 512, h, w) -> image (N, 3, 8h, 8w), unclamped.

    `layers` has the release's module order (pad, conv, relu, up, ...), so the authors'
    `decoder_iter_*.pth` keys map one to one onto `layers.<index>.*`.
    """

    def __init__(self) -> None:
        super().__init__()
        modules: list[nn.Module] = []
        n_convs = sum(1 for step in DECODER_PLAN if step != "up")
        seen = 0
        for step in DECODER_PLAN:
            if step == "up":
                modules.append(nn.Upsample(scale_factor=2, mode="nearest"))
                continue
            seen += 1
            modules += [nn.ReflectionPad2d(1), nn.Conv2d(step[0], step[1], 3)]
            if seen < n_convs:
                modules.append(nn.ReLU())
        self.layers = nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The same function as `self.layers(x)`, the release's op-by-op order, except that each
        upsample -> pad -> conv runs at the lower resolution (`upsample_reflect_conv3x3`): a
        quarter of the decoder's multiply-adds saved, in training and inference alike."""
        layers = list(self.layers)
        i = 0
        while i < len(layers):
            layer = layers[i]
            i += 1
            if isinstance(layer, nn.Upsample):  # with the pad and conv after it, fused; and the ReLU after those
                conv = layers[i + 1]
                relu = i + 2 < len(layers) and isinstance(layers[i + 2], nn.ReLU)
                x = upsample_reflect_conv3x3(x, conv.weight, conv.bias, relu=relu)
                i += 3 if relu else 2
            elif isinstance(layer, nn.ReLU):
                x = torch.relu_(x)  # in place: x is a convolution's fresh output, not a view
            elif isinstance(layer, nn.ReflectionPad2d):
                x = pad(x, layer.padding, "reflect")
            else:
                x = layer(x)
        return x

    def init_kaiming(self, output_mean: float = 0.45, output_std: float = 1e-3) -> "Decoder":
        """He-normal hidden convs (their activations keep their scale through the stack) and a
        near-constant output at `output_mean`.

        PyTorch's default init (the release's) shrinks activations ~2.4x per conv, so the first
        outputs have a range of ~0.04 and Adam needs thousands of steps to grow the contrast;
        this start skips that phase, which matters when a run has hundreds of iterations.
        """
        convs = [m for m in self.layers if isinstance(m, nn.Conv2d)]
        for conv in convs[:-1]:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        nn.init.normal_(convs[-1].weight, std=output_std)
        nn.init.constant_(convs[-1].bias, output_mean)
        return self
