"""`iecast video --temporal` against plain per-frame stylization: stability, and no blur.

For each clip (a folder of frames), the first N frames are resized to a shorter side of SIZE and
stylized with the shipped default model (fp32) per frame and through `TemporalBlender.stylize`
(the code `stylize_video(..., temporal=...)` runs, which a test checks), for each variant.

Printed per clip and mode:

- warping error and its ratio to the raw clip's own (as `iecast eval-video`: Farneback flow on
  the raw frames at their native size, stylized frames upsampled to it; lower is steadier);
- adjacent-frame distance ratio: mean perceptual distance between adjacent stylized frames over
  the raw clip's (LPIPS' form on the judge encoder's relu1_1..relu5_1, unit-normalised channels);
- content and style loss (SPEC.md's, `iecast.evaluation.metrics`) of every frame, on the judge encoder
  `vgg16-imagenet-offline-normalised` (the default model trained with the -rms encoder), against
  the frame and the style image resized to SIZE; and the temporal/per-frame change in percent.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/temporal_video.py        # 4 clips, 12 frames, 256 px, default
    .venv/bin/python benchmarks/temporal_video.py --clips cats --frames 6 --variants 0.8 0.8:0:0.3 0:0:0.3

A variant is CONTENT[:FEATURE[:PIXEL]], the previous frame's shares (`TemporalBlender`'s
content_weight, feature_weight, pixel_weight); the default is `--temporal`'s.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from iecast.evaluation import metrics
from iecast.training import losses
from iecast.inference.inputs import images_in_folder
from iecast.inference.stylizer import Stylizer, load_as_tensor, pad_to_multiple, resize_shorter_side
from iecast.inference.temporal import TemporalBlender
from iecast.weights import load_encoder

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CLIP_STYLES = {  # one painting per clip, different kinds of texture
    "cats": "s001_kandinsky_composition_vii.jpg",
    "sam2_coffee": "s002_afremov_rain_princess.jpg",
    "sam2_dog": "s004_hokusai_great_wave.jpg",
    "sam2_juggle": "s005_candy.jpg",
}
JUDGE = "vgg16-imagenet-offline-normalised"


def parse_variant(text: str) -> tuple[float, float, float]:
    shares = [float(x) for x in text.split(":")]
    if not 1 <= len(shares) <= 3:
        raise argparse.ArgumentTypeError(f"expected CONTENT[:FEATURE[:PIXEL]], got {text!r}")
    return tuple(shares + [0.0] * (3 - len(shares)))


@torch.inference_mode()
def stylize_clip(stylizer: Stylizer, frames: list[torch.Tensor], style,
                 variants: list[tuple[float, float, float]]) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    prepared = [stylizer.prepare_style(style)]
    blenders = [TemporalBlender(*shares) for shares in variants]
    plain, blended = [], [[] for _ in variants]
    for frame in frames:
        plain.append(stylizer.stylize_prepared(frame, prepared).float())
        for blender, outs in zip(blenders, blended):
            outs.append(blender.stylize(stylizer, frame, prepared))
    return plain, blended


@torch.no_grad()
def judge(encoder, outputs: torch.Tensor, contents_feats: list[dict], style_feats: dict,
          raw_full: torch.Tensor, raw_adjacent: float) -> dict:
    feats = [encoder(o[None]) for o in outputs]
    content = [float(losses.content_loss(f, c)) for f, c in zip(feats, contents_feats)]
    style = [float(losses.style_loss(f, style_feats)) for f in feats]
    unit = [{t: metrics.unit_normalize(v) for t, v in f.items()} for f in feats]
    adjacent = [float(sum((a[t] - b[t]).pow(2).sum(1).mean() for t in a)) for a, b in zip(unit[:-1], unit[1:])]
    up = F.interpolate(outputs, size=raw_full.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
    warp = metrics.warping_error(up, raw_full)
    return {"content_loss": sum(content) / len(content), "style_loss": sum(style) / len(style),
            "adjacent": sum(adjacent) / len(adjacent), "adjacent_ratio": sum(adjacent) / len(adjacent) / raw_adjacent,
            "warping_error": warp}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", default=list(CLIP_STYLES), help="clip folders under --data/video")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", type=int, default=256, help="shorter side for stylization")
    parser.add_argument("--variants", type=parse_variant, nargs="+", default=None, metavar="CONTENT[:FEATURE[:PIXEL]]",
                        help="temporal variants (default: --temporal's)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--model", default="default", help="pretrained name or stylizer file")
    args = parser.parse_args(argv)
    from iecast.inference.temporal import DEFAULT_STRENGTH

    variants = args.variants or [(DEFAULT_STRENGTH, 0.0, 0.0)]
    torch.manual_seed(0)
    stylizer = Stylizer.from_pretrained(args.model, precision="fp32")
    encoder = load_encoder(JUDGE)
    results = {}
    for name in args.clips:
        start = time.time()
        files = images_in_folder(args.data / "video" / name)[:args.frames]
        raw_full = torch.cat([load_as_tensor(f) for f in files])
        frames = [resize_shorter_side(f[None], args.size) for f in raw_full]
        style_path = args.data / "style" / CLIP_STYLES.get(name, "s002_afremov_rain_princess.jpg")
        plain, blended = stylize_clip(stylizer, frames, style_path, variants)
        style_feats = encoder(resize_shorter_side(load_as_tensor(style_path), args.size))
        with torch.no_grad():
            contents_feats = [encoder(f) for f in frames]
        unit = [{t: metrics.unit_normalize(v) for t, v in f.items()} for f in contents_feats]
        raw_adjacent = sum(float(sum((a[t] - b[t]).pow(2).sum(1).mean() for t in a))
                           for a, b in zip(unit[:-1], unit[1:])) / (len(unit) - 1)
        raw_warp = metrics.warping_error(raw_full, raw_full)
        rows = {"per-frame": judge(encoder, torch.cat(plain), contents_feats, style_feats, raw_full, raw_adjacent)}
        for shares, outs in zip(variants, blended):
            rows["temporal " + ":".join(f"{x:g}" for x in shares)] = judge(encoder, torch.cat(outs), contents_feats, style_feats, raw_full,
                                                raw_adjacent)
        base = rows["per-frame"]
        print(f"\n{name}: {len(files)} frames, {frames[0].shape[-1]}x{frames[0].shape[-2]}, style {style_path.name}, "
              f"raw warping error {raw_warp:.5f} ({time.time() - start:.0f} s)")
        print(f"  {'mode':<18} {'warp ratio':>10} {'adj ratio':>10} {'content':>9} {'style':>9} {'content %':>10} {'style %':>8}")
        for mode, r in rows.items():
            r["warping_ratio"] = r["warping_error"] / raw_warp
            r["content_change_pct"] = 100 * (r["content_loss"] / base["content_loss"] - 1)
            r["style_change_pct"] = 100 * (r["style_loss"] / base["style_loss"] - 1)
            print(f"  {mode:<18} {r['warping_ratio']:>10.3f} {r['adjacent_ratio']:>10.3f} {r['content_loss']:>9.4f} "
                  f"{r['style_loss']:>9.4f} {r['content_change_pct']:>+10.1f} {r['style_change_pct']:>+8.1f}")
        sys.stdout.flush()
        results[name] = {"frames": len(files), "size": args.size, "style": style_path.name, "raw_warping_error": raw_warp,
                         "modes": rows}
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
