"""`iecast video`: stylize a video file or a folder of frames, frame by frame."""
from __future__ import annotations

import argparse

from iecast.cli.stylize import add_control_arguments, add_model_arguments, build_stylizer, control_kwargs, warnings_as_lines


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "video", help="stylize a video (or a folder of frames)",
        description="Output ending in .mp4/.mkv/.mov is an H.264 video with the source's frame rate and audio; "
                    "anything else is a folder of frames. Several styles are blended into one result.")
    p.add_argument("input", help="video file or folder of frames")
    p.add_argument("-s", "--style", nargs="+", required=True, help="style image(s)")
    p.add_argument("-o", "--output", required=True, help="output video (.mp4, .mkv, .mov) or frame folder")
    p.add_argument("--fps", type=float, help="frame rate for a frame-folder input (default 25) or to override")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality (lower is better, 0-51; default 18)")
    p.add_argument("--ext", choices=["png", "jpg", "webp"], default="png", help="frame format for folder output")
    add_control_arguments(p)
    add_model_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iecast.errors import IecastError
    from iecast.inputs import expand_images
    from iecast.video import stylize_video

    with warnings_as_lines():
        kwargs = control_kwargs(args)
        if args.fps is not None and not args.fps > 0:
            raise IecastError(f"--fps must be positive (got {args.fps})")
        if not 0 <= args.crf <= 51:
            raise IecastError(f"--crf must be in 0..51 (got {args.crf})")
        styles = expand_images(args.style, "style")
        stylizer = build_stylizer(args)
        out = stylize_video(stylizer, args.input, styles, args.output, style_weights=args.style_weights,
                            masks=args.mask, fps=args.fps, crf=args.crf, frame_ext=args.ext,
                            progress=not args.quiet, **kwargs)
    print(out)
    return 0
