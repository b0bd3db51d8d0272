"""A gallery grid: the first row holds the styles, each further row a photo and its stylizations.

With several `--weights` (each `LABEL=NAME-OR-FILE`, or a bare name or file), each photo gets
one row per model, labelled, so models can be compared cell by cell.

    python scripts/make_gallery.py --weights default -o docs/gallery.jpg \
        --content ../shared/data/content/c080_*.jpg ... --style ../shared/data/style/s116_*.jpg ...
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from iecast.images import load_image, save_image
from iecast.inference.stylizer import Stylizer


def square(image: Image.Image, size: int) -> Image.Image:
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", nargs="+", default=["default"], metavar="[LABEL=]WEIGHTS",
                        help="pretrained names or files; one row each per photo")
    parser.add_argument("--content", type=Path, nargs="+", required=True)
    parser.add_argument("--style", type=Path, nargs="+", required=True)
    parser.add_argument("--size", type=int, default=256, help="side of each cell")
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    labelled = [w.split("=", 1) if "=" in w else (Path(w).stem, w) for w in args.weights]
    stylizers = {label: Stylizer.from_pretrained(weights) for label, weights in labelled}
    contents = [square(load_image(p), args.size) for p in args.content]
    styles = [square(load_image(p), args.size) for p in args.style]
    rows = len(contents) * len(stylizers)
    grid = Image.new("RGB", ((len(styles) + 1) * args.size, (rows + 1) * args.size), "white")
    for j, style in enumerate(styles):
        grid.paste(style, ((j + 1) * args.size, 0))
    row = 1
    for content in contents:
        for label, stylizer in stylizers.items():
            grid.paste(content, (0, row * args.size))
            if len(stylizers) > 1:
                ImageDraw.Draw(grid).text((6, row * args.size + 4), label, fill="white", stroke_width=2, stroke_fill="black")
            for j, style in enumerate(styles):
                grid.paste(stylizer.stylize(content, style), ((j + 1) * args.size, row * args.size))
            row += 1
    print(save_image(grid, args.out, quality=85))


if __name__ == "__main__":
    main()
