"""Compute the per-channel scales that normalise the offline VGG-16 (Gatys et al. style).

Each conv filter up to conv5_1 is divided by its mean ReLU activation over a fixed image set
(and the next conv compensates), so every filter of the normalised network has mean
activation 1 on that set while feature maps change only by per-channel scales. Because the
rescaled activations are exactly the raw ones divided by their scale, all scales come from
one pass of the raw network. Channels that never fire on the set keep scale 1.

Reference set: `reference_images()` below (the first 16 content and first 16 style images
of shared/data, sorted by name, resized to 256 on the shorter side, centre-cropped to 224).

    python scripts/compute_vgg16_scales.py --data ../shared/data \
        --out src/iecast/assets/vgg16_normalised_scales.safetensors
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from iecast.images import load_image, pil_to_tensor
from iecast.models.vgg import conv_names
from iecast.weights import load_encoder

PER_FOLDER = 16
SIZE = 224


def reference_images(data_root: Path) -> torch.Tensor:
    """The fixed reference set as a (32, 3, 224, 224) batch in [0, 1]."""
    tensors = []
    for folder in ("content", "style"):
        for path in sorted((data_root / folder).glob("*.jpg"))[:PER_FOLDER]:
            image = load_image(path)
            scale = 256 / min(image.size)
            image = image.resize((max(SIZE, round(image.width * scale)), max(SIZE, round(image.height * scale))), Image.BICUBIC)
            left, top = (image.width - SIZE) // 2, (image.height - SIZE) // 2
            tensors.append(pil_to_tensor(image.crop((left, top, left + SIZE, top + SIZE))))
    if len(tensors) != 2 * PER_FOLDER:
        raise SystemExit(f"{data_root}: expected {PER_FOLDER} images in content/ and style/")
    return torch.cat(tensors)


@torch.no_grad()
def mean_activations(encoder, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean ReLU output of every conv up to conv5_1, per channel, over all images and positions."""
    names = conv_names(encoder.arch)
    sums = {n: torch.zeros(encoder.convs[n].out_channels, dtype=torch.float64) for n in names}
    counts = dict.fromkeys(names, 0)
    for batch in images.split(4):
        x = encoder.normalize_input(batch)
        for i, name in enumerate(names):
            if i > 0 and names[i - 1].split("_")[0] != name.split("_")[0]:
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            x = encoder._conv(name, x)
            sums[name] += x.double().sum(dim=(0, 2, 3))
            counts[name] += x.shape[0] * x.shape[2] * x.shape[3]
    return {n: (sums[n] / counts[n]).float() for n in names}


def compute_scales(data_root: Path) -> dict[str, torch.Tensor]:
    means = mean_activations(load_encoder("vgg16-imagenet-offline"), reference_images(data_root))
    return {n: torch.where(m > 1e-8, m, torch.ones_like(m)) for n, m in means.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("src/iecast/assets/vgg16_normalised_scales.safetensors"))
    args = parser.parse_args()
    from safetensors.torch import save_file

    scales = compute_scales(args.data)
    save_file(scales, str(args.out), metadata={"reference_set": f"first {PER_FOLDER} content + {PER_FOLDER} style of shared/data, 256 short side, centre crop {SIZE}"})
    for name, s in scales.items():
        print(f"{name}: mean scale {s.mean():.3f}, min {s.min():.3g}, max {s.max():.3g}, dead {(s == 1).sum().item()}")


if __name__ == "__main__":
    main()
