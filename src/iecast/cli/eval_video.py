"""`iecast eval-video`: temporal stability of a stylized video against its raw video."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from iecast.evaluation.harness import evaluate_video


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval-video", help="temporal stability of a stylized video (file or frame folder)",
                       description="Mean perceptual distance between adjacent frames of the stylized and of the raw video, "
                                   "their ratio (the paper's Table 2), and the short-term warping error.")
    p.add_argument("--stylized", required=True, type=Path, help="stylized video file or frame folder")
    p.add_argument("--raw", required=True, type=Path, help="the raw video (file or frame folder), same frame count")
    p.add_argument("--max-frames", type=int, default=None, help="use only the first N frames of each")
    p.add_argument("--perceptual", choices=("lpips", "offline"), default="lpips", help="distance (default lpips, else offline)")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = evaluate_video(args.stylized, args.raw, perceptual=args.perceptual, max_frames=args.max_frames)
    if result["distance_note"]:
        print(f"note: {result['distance_note']}; using {result['distance']} (not LPIPS)")
    ratio = "inf" if result["ratio"] is None else f"{result['ratio']:.4f}"
    print(f"frames {result['frames']}  {result['distance']}: stylized {result['perceptual_mean']:.4f}  "
          f"raw {result['perceptual_raw']:.4f}  ratio {ratio}  warping error {result['warping_error']:.5f} "
          f"(raw {result['warping_error_raw']:.5f})")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0
