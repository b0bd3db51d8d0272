"""`iecast stylize`: one content and one style image to one output file."""
from __future__ import annotations

import argparse

from iecast.images import save_image


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stylize", help="stylize a content image with a style image")
    p.add_argument("-c", "--content", required=True, help="content image")
    p.add_argument("-s", "--style", required=True, help="style image")
    p.add_argument("-o", "--output", required=True, help="output image (.jpg, .png, .webp)")
    p.add_argument("--alpha", type=float, default=1.0, help="stylization strength in [0, 1]")
    p.add_argument("--weights", default="default", help="pretrained name or iecast .safetensors path")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iecast.stylizer import Stylizer

    result = Stylizer.from_pretrained(args.weights).stylize(args.content, args.style, alpha=args.alpha)
    print(save_image(result, args.output))
    return 0
