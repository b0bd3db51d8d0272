"""Compute the per-channel scales that normalise the offline VGG-16.

Each conv filter up to conv5_1 is divided by a statistic of its ReLU activation over a fixed
image set (and the next conv compensates), so feature maps change only by per-channel
scales. Because the rescaled activations are exactly the raw ones divided by their scale,
all scales come from one pass of the raw network.

Two recipes, one per shipped encoder:

- `mean` (`vgg16-imagenet-offline-normalised`, Gatys et al.'s recipe): divide by the mean
  activation, so every filter has mean activation 1. Reference set: `reference_images()`,
  the first 16 content and first 16 style images of shared/data. Channels that never fire
  keep scale 1. Filters that fire rarely but hard get huge maps after this division: on
  blurred photos one relu4_1 channel carries 95% of that layer's style loss.
- `rms` (`vgg16-imagenet-offline-rms`, the default): divide by the root-mean-square
  activation, times one factor per layer (the median mean / median RMS ratio) so that a
  typical filter keeps the same size as under `mean` and the release's loss weights keep
  their balance. Sparse filters no longer dominate. Reference set: the training split
  (`benchmarks/splits/train_*.txt`). Channels that never fire get their layer's median scale.

Both take 256-on-the-shorter-side resizes, centre-cropped to 224.

    python scripts/compute_vgg16_scales.py --statistic mean --data ../shared/data \
        --out src/iecast/assets/vgg16_normalised_scales.safetensors
    python scripts/compute_vgg16_scales.py --statistic rms \
        --lists benchmarks/splits/train_content.txt benchmarks/splits/train_style.txt \
        --out src/iecast/assets/vgg16_rms_scales.safetensors
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from iecast.training.data import list_images
from iecast.images import load_image, pil_to_tensor
from iecast.models.vgg import conv_names
from iecast.weights import load_encoder

PER_FOLDER = 16
SIZE = 224


def centre_crop(path: Path) -> torch.Tensor:
    """One image as (1, 3, 224, 224) in [0, 1]: 256 on the shorter side, centre crop."""
    image = load_image(path)
    scale = 256 / min(image.size)
    image = image.resize((max(SIZE, round(image.width * scale)), max(SIZE, round(image.height * scale))), Image.BICUBIC)
    left, top = (image.width - SIZE) // 2, (image.height - SIZE) // 2
    return pil_to_tensor(image.crop((left, top, left + SIZE, top + SIZE)))


def reference_images(data_root: Path) -> torch.Tensor:
    """The `mean` recipe's reference set as a (32, 3, 224, 224) batch in [0, 1]."""
    paths = [p for folder in ("content", "style") for p in sorted((data_root / folder).glob("*.jpg"))[:PER_FOLDER]]
    if len(paths) != 2 * PER_FOLDER:
        raise SystemExit(f"{data_root}: expected {PER_FOLDER} images in content/ and style/")
    return torch.cat([centre_crop(p) for p in paths])


def split_images(lists: list[Path]) -> torch.Tensor:
    """The `rms` recipe's reference set: every image named by the list files."""
    return torch.cat([centre_crop(p) for p in list_images([str(f) for f in lists])])


@torch.no_grad()
def activation_statistics(encoder, images: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per channel (mean, RMS) of every conv's ReLU output up to conv5_1, over all images and positions."""
    names = conv_names(encoder.arch)
    sums = {n: torch.zeros(encoder.convs[n].out_channels, dtype=torch.float64) for n in names}
    squares = {n: torch.zeros_like(sums[n]) for n in names}
    counts = dict.fromkeys(names, 0)
    for batch in images.split(4):
        x = encoder.normalize_input(batch)
        for i, name in enumerate(names):
            if i > 0 and names[i - 1].split("_")[0] != name.split("_")[0]:
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            x = encoder._conv(name, x)
            sums[name] += x.double().sum(dim=(0, 2, 3))
            squares[name] += x.double().square().sum(dim=(0, 2, 3))
            counts[name] += x.shape[0] * x.shape[2] * x.shape[3]
    return {n: ((sums[n] / counts[n]).float(), (squares[n] / counts[n]).sqrt().float()) for n in names}


def compute_scales(images: torch.Tensor, statistic: str) -> dict[str, torch.Tensor]:
    stats = activation_statistics(load_encoder("vgg16-imagenet-offline"), images)
    scales = {}
    for name, (mean, rms) in stats.items():
        live = mean > 1e-8
        if statistic == "mean":
            scales[name] = torch.where(live, mean, torch.ones_like(mean))
        else:
            rms = rms * (mean[live].median() / rms[live].median())
            scales[name] = torch.where(live, rms, rms[live].median())
    return scales


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--statistic", choices=("mean", "rms"), required=True)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="reference root of the mean recipe")
    parser.add_argument("--lists", type=Path, nargs="+", help="list files of the rms recipe's reference set")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from safetensors.torch import save_file

    if args.statistic == "mean":
        images = reference_images(args.data)
        described = f"first {PER_FOLDER} content + {PER_FOLDER} style of shared/data, 256 short side, centre crop {SIZE}"
    else:
        if not args.lists:
            parser.error("--statistic rms needs --lists")
        images = split_images(args.lists)
        described = f"{len(images)} images of {', '.join(p.name for p in args.lists)}, 256 short side, centre crop {SIZE}"
    scales = compute_scales(images, args.statistic)
    save_file(scales, str(args.out), metadata={"statistic": args.statistic, "reference_set": described})
    for name, s in scales.items():
        print(f"{name}: median scale {s.median():.3f}, min {s.min():.3g}, max {s.max():.3g}")


if __name__ == "__main__":
    main()
