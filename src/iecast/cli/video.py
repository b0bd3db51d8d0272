"""`iecast video`: stylize a video file or a folder of frames, frame by frame."""
from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from typing import Iterator

from iecast.cli.stylize import (add_control_arguments, add_model_arguments, build_stylizer, control_options,
                                note_precision, warnings_as_lines)
from iecast.errors import IecastError
from iecast.inference.inputs import expand_images
from iecast.inference.video import stylize_video


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM, so the run unwinds and removes its partial output."""


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into `Terminated` (like SIGINT's KeyboardInterrupt) while the block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigterm(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "video", help="stylize a video (or a folder of frames)",
        description="Output ending in .mp4/.mkv/.mov is an H.264 video with the source's frame rate and audio; "
                    "anything else is a folder of frames. Several styles are blended into one result. "
                    "Interrupted (Ctrl-C, SIGTERM) or failed runs leave no partial output.")
    p.add_argument("input", help="video file or folder of frames")
    p.add_argument("-s", "--style", nargs="+", required=True, help="style image(s)")
    p.add_argument("-o", "--output", required=True, help="output video (.mp4, .mkv, .mov) or frame folder")
    p.add_argument("--fps", type=float, help="frame rate for a frame-folder input (default 25) or to override")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality (lower is better, 0-51; default 18)")
    p.add_argument("--ext", choices=["png", "jpg", "webp"], default="png", help="frame format for folder output")
    p.add_argument("--temporal", type=float, nargs="?", const=True, default=False, metavar="STRENGTH",
                   help="keep adjacent frames consistent: blend each frame's content features with the previous "
                        "frame's, warped by optical flow where it is reliable (needs OpenCV; off by default). "
                        "STRENGTH in (0, 1) is the previous frame's share of the content features (default 0.7). "
                        "Frames may have 41%% of --max-pixels (8.3 MP, 4K UHD, by default)")
    p.add_argument("--batch-size", type=int, metavar="N",
                   help="stylize N frames in one pass; meant for GPUs (default: 1 on CPU, where batches measured slower; "
                        "4 on CUDA); same results up to float rounding. --temporal, --mask and --preserve-color go frame by frame")
    add_control_arguments(p)
    add_model_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        with sigterm_unwinds(), warnings_as_lines():
            options = control_options(args)
            if args.fps is not None and not args.fps > 0:
                raise IecastError(f"--fps must be positive (got {args.fps})")
            if not 0 <= args.crf <= 51:
                raise IecastError(f"--crf must be in 0..51 (got {args.crf})")
            styles = expand_images(args.style, "style")
            stylizer = build_stylizer(args)
            out = stylize_video(stylizer, args.input, styles, args.output, masks=args.mask, fps=args.fps, crf=args.crf,
                                frame_ext=args.ext, progress=not args.quiet, temporal=args.temporal, options=options,
                                batch_size=args.batch_size)
    except Terminated:
        print("iecast: terminated; the partial output was removed", file=sys.stderr)
        return 128 + signal.SIGTERM
    print(out)
    note_precision(stylizer)
    return 0
