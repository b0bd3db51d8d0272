"""`iecast` command line: a thin layer over the Python API, one module per subcommand.

Each module in SUBCOMMANDS defines `add_parser(subparsers)`, which registers its parser and
sets `func(args) -> int`. Every `IecastError` becomes one line on stderr and exit status 1.
`demo` is not a subcommand but `make demo`'s runner (`python -m iecast.cli.demo`); it lives here,
at the top layer, because it uses both inference (trained weights) and evaluation (the Gatys fallback).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from iecast import __version__
from iecast.errors import IecastError
from iecast.hardware import keep_freed_mb_requested, keep_freed_memory

SUBCOMMANDS = ("stylize", "video", "train", "export", "serve", "eval", "eval_video", "survey")
# Commands whose images are resized to a bounded size keep freed memory for the next image (no page
# faults per call). `stylize` and `video` accept up to 20 megapixels within 4 GB, which the kept heap
# would exceed, so there only $IECAST_KEEP_FREED_MB turns it on.
KEEP_FREED_COMMANDS = ("eval", "eval-video", "serve")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iecast", description="Artistic style transfer (IEContraAST).")
    parser.add_argument("--version", action="version", version=f"iecast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"iecast.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command in KEEP_FREED_COMMANDS or keep_freed_mb_requested() is not None:
            keep_freed_memory()
        return int(args.func(args) or 0)
    except IecastError as exc:
        print(f"iecast: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("iecast: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
