"""`iecast serve`: the local web page (upload a photo, pick a style, download the result)."""
from __future__ import annotations

import argparse
from pathlib import Path

from iecast.errors import IecastError
from iecast.serve.config import ServeConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    from iecast.serve.config import ServeConfig

    limits = ServeConfig()  # the limits' defaults live there, for the CLI and the Python API alike
    p = sub.add_parser("serve", help="start a local web page to stylize photos in the browser",
                       description="Serve a web page to stylize photos (upload a photo, pick a style, download the "
                                   "result). It listens on this computer only unless --host says otherwise.")
    p.add_argument("--weights", default="default", help="pretrained name or iecast .safetensors path (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 opens it to the network (default: %(default)s, this computer only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port; 0 picks a free one (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps (default: %(default)s)")
    p.add_argument("--styles", type=Path, default=None,
                   help="folder of sample style images; a styles.txt there names them in order, the first pre-selected "
                        "(default: the paintings shipped in iecast/assets/samples)")
    p.add_argument("--max-upload-mb", type=float, default=limits.max_upload_bytes / 2**20, help="largest request body in MB (default: %(default)s)")
    p.add_argument("--max-megapixels", type=float, default=limits.max_pixels / 1e6,
                   help="largest uploaded image in megapixels (default: %(default)s)")
    p.add_argument("--max-side", type=int, default=limits.max_side, help="largest output side offered, in pixels (default: %(default)s)")
    p.add_argument("--queue", type=int, default=limits.queue_size, help="jobs allowed to wait; more get 503 'busy' (default: %(default)s)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a host name the page may also be opened under and submit jobs from (repeatable); IP "
                        "addresses, localhost and this machine's name are always accepted, other names are refused "
                        "to guard against DNS rebinding (default: none)")
    p.add_argument("--style-size", default="auto",
                   help="shorter side the style is resized to: pixels, 'none' (keep), or 'auto' (the scale the model "
                        "was trained at) (default: %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iecast.serve.app import serve  # deferred: it imports fastapi, the optional `serve` extra

    if args.queue < 1 or args.max_side < 68 or args.max_upload_mb <= 0 or args.max_megapixels <= 0:
        raise IecastError("--queue must be >= 1, --max-side >= 68, and the upload and pixel limits positive")
    if args.styles is not None and not args.styles.is_dir():
        raise IecastError(f"{args.styles}: no such folder of style images")
    style_size: int | str | None = args.style_size
    if style_size == "none":
        style_size = None
    elif style_size != "auto":
        if not str(style_size).isdigit() or int(style_size) < 32:
            raise IecastError(f"--style-size must be a number of pixels (>= 32), 'none' or 'auto' (got {style_size!r})")
        style_size = int(style_size)
    config = ServeConfig(max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                         max_pixels=int(args.max_megapixels * 1e6), max_side=args.max_side,
                         default_size=min(ServeConfig.default_size, args.max_side), queue_size=args.queue, samples_dir=args.styles,
                         style_size=style_size, allowed_hosts=tuple(args.allow_host))
    serve(args.weights, host=args.host, port=args.port, config=config, device=args.device)
    return 0
