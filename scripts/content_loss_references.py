"""Put a model's content loss next to the scores of simple degradations of the photo.

The content loss (mean-variance-normalised relu4_1 and relu5_1 features, SPEC.md) has no
obvious scale: a flat image scores just under 2.0 (1 per tap, less the photo's dead channels)
and an image unrelated to the photo about 3.3.
This prints, per tap, what a model's stylizations T(c, s) and reconstructions T(c, c) score on
training crops, beside the photo blurred, in grayscale, with noise added, and beside pure noise
and the painting itself, so a training log's content figures can be read against them.

    python scripts/content_loss_references.py --weights "RMS 600=runs/rms600.safetensors" \
        --content benchmarks/splits/train_content.txt --style benchmarks/splits/train_style.txt
"""
from __future__ import annotations

import argparse
import random

import torch
import torch.nn.functional as F

from iecast.training.data import check_images, list_images, resize_and_crop
from iecast.images import load_image
from iecast.training.losses import content_loss
from iecast.inference.stylizer import Stylizer
from iecast.weights import load_encoder

TAPS = ("relu4_1", "relu5_1")


def per_tap_content_loss(encoder, images: torch.Tensor, content_feats: dict[str, torch.Tensor]) -> list[float]:
    """The training content loss of `images` against the photos' features, one figure per tap."""
    got = encoder(images.clamp(0, 1))
    return [content_loss(got, content_feats, (t,)).item() for t in TAPS]


def blurred(x: torch.Tensor, factor: int) -> torch.Tensor:
    return F.interpolate(F.avg_pool2d(x, factor), scale_factor=factor, mode="bilinear", align_corners=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", nargs="*", default=[], metavar="LABEL=FILE", help="exported iecast models")
    parser.add_argument("--content", nargs="+", required=True, help="folders or list files")
    parser.add_argument("--style", nargs="+", required=True, help="folders or list files")
    parser.add_argument("--count", type=int, default=8, help="pairs (the first N photos and paintings)")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--encoder", help="judging encoder (default: the first model's, else iecast's default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    content_files = check_images(list_images(args.content), "content")[: args.count]
    style_files = check_images(list_images(args.style), "style")[: args.count]
    n = min(len(content_files), len(style_files))
    c = torch.stack([resize_and_crop(load_image(f), 2 * args.crop, args.crop, "square", rng) for f in content_files[:n]])
    s = torch.stack([resize_and_crop(load_image(f), 2 * args.crop, args.crop, "square", rng) for f in style_files[:n]])
    noise = torch.rand_like(c)  # drawn before any model is built, so every run scores the same references

    models = []
    for spec in args.weights:
        label, _, path = spec.partition("=")
        models.append((label, Stylizer.from_pretrained(path).network))
    encoder = load_encoder(args.encoder) if args.encoder or not models else models[0][1].encoder

    rows: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for label, network in models:
            c_feats, s_feats = network.encode(c), network.encode(s)
            rows[f"{label}: T(c, s)"] = network.decoder(network.transform(c_feats, s_feats))
            rows[f"{label}: T(c, c)"] = network.decoder(network.transform(c_feats, c_feats))
        rows.update({
            "photo, grayscale": c.mean(1, keepdim=True).expand_as(c),
            "photo + 0.5 x uniform noise": c + 0.5 * noise,
            "photo blurred 4x": blurred(c, 4),
            "photo blurred 8x": blurred(c, 8),
            "flat mean colour": c.mean((2, 3), keepdim=True).expand_as(c),
            "uniform noise": noise,
            "the painting itself": s,
        })
        print(f"{n} pairs, {args.crop}x{args.crop} crops of a {2 * args.crop} square resize, judged by {encoder.source}")
        print(f"| image | {' | '.join(TAPS)} | content loss |\n|---|---|---|---|")
        photo_feats = encoder(c)
        for name, images in rows.items():
            taps = per_tap_content_loss(encoder, images, photo_feats)
            print(f"| {name} | {' | '.join(f'{v:.3f}' for v in taps)} | {sum(taps):.3f} |")


if __name__ == "__main__":
    main()
