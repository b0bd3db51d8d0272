"""Write a compact copy of a training set: every image resized once to the release's square
`SIZE x SIZE` (bicubic, aspect not kept, EXIF applied, any mode to RGB) and saved as JPEG, plus
the two list files `iecast train` reads. With `resize_mode=square` and `resize=SIZE` the
trainer's own resize is then a no-op, so the data loader only decodes small files. The copy is
small enough to travel to a remote GPU machine (the training split at 512 px, quality 90: 17 MB).

    python scripts/prepare_training_set.py --content benchmarks/splits/train_content.txt \\
        --style benchmarks/splits/train_style.txt --out .devpack/data
    iecast train --preset paper --content .devpack/data/train_content.txt --style .devpack/data/train_style.txt ...
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from iecast.training.data import list_images
from iecast.images import load_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", nargs="+", required=True, help="folders or .txt list files")
    parser.add_argument("--style", nargs="+", required=True, help="folders or .txt list files")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--quality", type=int, default=90)
    args = parser.parse_args()
    for pool, sources in (("content", args.content), ("style", args.style)):
        folder = args.out / pool
        folder.mkdir(parents=True, exist_ok=True)
        names = []
        for path in list_images(sources):
            name = f"{path.stem}.jpg"
            if name in names:
                raise SystemExit(f"two {pool} images would both be written as {name}; rename one")
            load_image(path).resize((args.size, args.size), Image.BICUBIC).save(folder / name, quality=args.quality)
            names.append(name)
        (args.out / f"train_{pool}.txt").write_text("".join(f"{pool}/{n}\n" for n in names))
        print(f"{pool}: {len(names)} images -> {folder}")


if __name__ == "__main__":
    main()
