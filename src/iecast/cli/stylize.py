"""`iecast stylize`: content images x style images -> stylized images (all pairs, or blends)."""
from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from pathlib import Path
from typing import Iterator

from iecast.errors import IecastError

OUTPUT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


# ---------------------------------------------------------------- options shared with `iecast video`

def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default="default", metavar="NAME|PATH",
                   help="pretrained name (see iecast.weights.PRETRAINED) or an iecast .safetensors file")
    p.add_argument("--official", metavar="DIR",
                   help="folder with the authors' decoder_iter_*.pth, transformer_iter_*.pth, vgg_normalised.pth")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto: bf16 on GPUs and CPUs with native bf16, else fp32")


def add_control_arguments(p: argparse.ArgumentParser) -> None:
    from iecast.stylizer import MAX_PIXELS

    p.add_argument("--alpha", type=float, default=1.0, help="stylization strength in [0, 1] (0 = content)")
    p.add_argument("--style-weights", type=float, nargs="+", metavar="W",
                   help="blend all styles into one result with these weights (normalised to sum 1)")
    p.add_argument("--mask", nargs="+", metavar="MASK",
                   help="one binary mask per style: each style paints its own region (one result)")
    p.add_argument("--preserve-color", choices=["luminance", "histogram"],
                   help="luminance: keep the content's colours; histogram: recolour the style to the content's first")
    p.add_argument("--content-size", type=int, metavar="PX", help="resize the content's shorter side first")
    p.add_argument("--style-size", type=int, default=None, metavar="PX",
                   help="resize the style's shorter side (default: the scale the model was trained at, "
                        "e.g. 512 for the release, 256 for the shipped default; 0 = keep)")
    p.add_argument("--tile", default="auto", metavar="auto|none|PX",
                   help="process large images in overlapping tiles of PX pixels "
                        "(auto: 2048 px tiles for images over 2048x2048 pixels)")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N",
                   help=f"refuse larger images (decompression bombs); default {MAX_PIXELS}")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_tile(value: str) -> int | str | None:
    if value in ("auto",):
        return "auto"
    if value.lower() in ("none", "off", "0"):
        return None
    try:
        size = int(value)
    except ValueError as exc:
        raise IecastError(f"--tile must be auto, none or a number of pixels (got {value!r})") from exc
    if size < 64:
        raise IecastError(f"--tile must be at least 64 pixels (got {size})")
    return size


def control_kwargs(args: argparse.Namespace) -> dict:
    """The `Stylizer.stylize` keyword arguments the control flags ask for."""
    if args.content_size is not None and args.content_size < 16:
        raise IecastError(f"--content-size must be at least 16 (got {args.content_size})")
    if args.style_size is not None and 0 < args.style_size < 16:
        raise IecastError(f"--style-size must be 0 (keep) or at least 16 (got {args.style_size})")
    return {
        "alpha": args.alpha, "preserve_color": args.preserve_color, "content_size": args.content_size,
        "style_size": "auto" if args.style_size is None else args.style_size or None, "tile": parse_tile(args.tile), "max_pixels": args.max_pixels,
    }


def no_weights_message() -> str:
    return ("no trained iecast weights are installed (iecast.weights.PRETRAINED has no 'default' model): "
            "train a model with `iecast train` (see the README), turn its checkpoint into weights with "
            "`iecast export CHECKPOINT -o model.safetensors` and pass --weights model.safetensors, "
            "or pass --official DIR with the authors' three .pth files")


def build_stylizer(args: argparse.Namespace):
    """The `Stylizer` for --official or --weights, with a clear message when no weights exist."""
    from iecast import weights
    from iecast.stylizer import Stylizer

    if args.official:
        return Stylizer.from_official(**weights.official_files(args.official), device=args.device, precision=args.precision)
    if args.weights == "default" and "default" not in weights.PRETRAINED and not Path("default").exists():
        raise IecastError(no_weights_message())
    return Stylizer.from_pretrained(args.weights, device=args.device, precision=args.precision)


@contextlib.contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Show iecast's warnings (fixed-up inputs) as one `iecast: warning: ...` line each."""
    from iecast.stylizer import IecastWarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, IecastWarning):
            print(f"iecast: warning: {message}", file=sys.stderr)
        else:
            previous(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        previous = warnings.showwarning
        warnings.simplefilter("always", IecastWarning)
        warnings.showwarning = show
        yield


# ---------------------------------------------------------------- stylize

def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stylize", help="stylize images (files, folders or globs; all content x style pairs)",
        description="Every content is stylized with every style, written as {content}_stylized_{style}.{ext}. "
                    "With --style-weights or --mask the styles are blended into one result per content.")
    p.add_argument("-c", "--content", nargs="+", required=True, help="content images, folders or glob patterns")
    p.add_argument("-s", "--style", nargs="+", required=True, help="style images, folders or glob patterns")
    p.add_argument("-o", "--output", required=True,
                   help="output file (one result) or folder; the file's extension picks the format (jpg, png, webp)")
    p.add_argument("--ext", choices=["jpg", "png", "webp"], help="format of files written into a folder "
                                                                   "(default: the content's, else jpg)")
    add_control_arguments(p)
    add_model_arguments(p)
    p.set_defaults(func=run)


def output_path(output: Path, as_file: bool, content: Path, style_name: str, ext: str | None) -> Path:
    if as_file:
        return output
    suffix = f".{ext}" if ext else (content.suffix.lower() if content.suffix.lower() in OUTPUT_EXTENSIONS else ".jpg")
    return output / f"{content.stem}_stylized_{style_name}{suffix}"


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from iecast.images import save_image
    from iecast.inputs import expand_images

    with warnings_as_lines():
        contents = expand_images(args.content, "content")
        styles = expand_images(args.style, "style")
        kwargs = control_kwargs(args)
        blended = args.style_weights is not None or args.mask is not None
        if args.mask is not None and len(args.mask) != len(styles):
            raise IecastError(f"got {len(args.mask)} masks for {len(styles)} styles; give one mask per style")
        jobs = [(c, styles, "+".join(s.stem for s in styles)) for c in contents] if blended else \
            [(c, [s], s.stem) for c in contents for s in styles]
        output = Path(args.output)
        as_file = output.suffix.lower() in OUTPUT_EXTENSIONS
        if output.suffix and not as_file and not output.is_dir():
            raise IecastError(f"{output}: unsupported output format {output.suffix}; use .jpg, .png or .webp")
        if as_file and len(jobs) > 1:
            raise IecastError(f"{output}: {len(jobs)} results to write; give a folder, not a file name")
        if not 0.0 <= args.alpha <= 1.0:
            raise IecastError(f"alpha must be in [0, 1] (got {args.alpha})")
        stylizer = build_stylizer(args)
        histogram = args.preserve_color == "histogram"
        prepared = {} if histogram else {s: stylizer.prepare_style(s, kwargs["style_size"], max_pixels=args.max_pixels)
                                         for s in styles}
        for content, job_styles, style_name in tqdm(jobs, desc="stylize", unit="image", disable=args.quiet or None):
            result = stylizer.stylize(content, [prepared.get(s, s) for s in job_styles],
                                      style_weights=args.style_weights, masks=args.mask, **kwargs)
            print(save_image(result, output_path(output, as_file, content, style_name, args.ext)))
    return 0
