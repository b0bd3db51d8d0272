"""A gallery grid: the first row holds the styles, each further row a photo and its stylizations.

    python scripts/make_gallery.py --weights default -o docs/gallery.jpg \
        --content ../shared/data/content/c080_*.jpg ... --style ../shared/data/style/s116_*.jpg ...
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from iecast.images import load_image, save_image
from iecast.stylizer import Stylizer


def square(image: Image.Image, size: int) -> Image.Image:
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default="default")
    parser.add_argument("--content", type=Path, nargs="+", required=True)
    parser.add_argument("--style", type=Path, nargs="+", required=True)
    parser.add_argument("--size", type=int, default=256, help="side of each cell")
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    stylizer = Stylizer.from_pretrained(args.weights)
    contents = [square(load_image(p), args.size) for p in args.content]
    styles = [square(load_image(p), args.size) for p in args.style]
    grid = Image.new("RGB", ((len(styles) + 1) * args.size, (len(contents) + 1) * args.size), "white")
    for j, style in enumerate(styles):
        grid.paste(style, ((j + 1) * args.size, 0))
    for i, content in enumerate(contents):
        grid.paste(content, (0, (i + 1) * args.size))
        for j, style in enumerate(styles):
            grid.paste(stylizer.stylize(content, style), ((j + 1) * args.size, (i + 1) * args.size))
    print(save_image(grid, args.out, quality=85))


if __name__ == "__main__":
    main()
