"""`iecast stylize`: content images x style images -> stylized images (all pairs, or blends)."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from pathlib import Path
from typing import Iterator

from tqdm.auto import tqdm

from iecast import weights
from iecast.errors import IecastError
from iecast.images import MAX_PIXELS, MAX_STYLE_PIXELS, MIN_SIDE, WriteError, check_writable, megapixels
from iecast.cli.stylize_batched import stylize_in_batches, write_result
from iecast.inference.batch import batchable, default_batch_size
from iecast.inference.color import PRESERVE_COLOR_MODES
from iecast.inference.inputs import expand_images
from iecast.inference.options import IecastWarning, StylizeOptions
from iecast.inference.stylizer import Stylizer
from iecast.inference.tiling import AUTO_TILE_ABOVE, DEFAULT_TILE
from iecast.weights import registry

OUTPUT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


# ---------------------------------------------------------------- options shared with `iecast video`

def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default="default", metavar="NAME|PATH",
                   help="pretrained name (see iecast.weights.PRETRAINED) or an iecast .safetensors file")
    p.add_argument("--official", metavar="DIR",
                   help="folder with the authors' decoder_iter_*.pth, transformer_iter_*.pth, vgg_normalised.pth")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps (default: auto)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto (default): bf16 on GPUs and on CPUs with native bf16 (AMX, AVX512-BF16), much faster "
                        "there but slightly different from fp32; fp32 everywhere else. fp32 gives the same output on every machine")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the encoder and decoder: the first image of each size compiles (tens of seconds), "
                        "the rest run faster; for many same-size images or video frames (needs a C++ compiler on CPU)")


def add_control_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--alpha", type=float, default=1.0, help="stylization strength in [0, 1] (0 = content)")
    p.add_argument("--style-weights", type=float, nargs="+", metavar="W",
                   help="blend all styles into one result with these weights (normalised to sum 1)")
    p.add_argument("--mask", nargs="+", metavar="MASK",
                   help="one binary mask per style: each style paints its own region (one result)")
    p.add_argument("--preserve-color", choices=PRESERVE_COLOR_MODES,
                   help="luminance: keep the content's colours; histogram: recolour the style to the content's first")
    p.add_argument("--content-size", type=int, metavar="PX", help="resize the content's shorter side first")
    p.add_argument("--style-size", type=int, default=None, metavar="PX",
                   help="resize the style's shorter side (default: the scale the model was trained at, "
                        "e.g. 512 for the release, 256 for the shipped default; 0 = keep)")
    p.add_argument("--tile", default="auto", metavar="auto|none|PX",
                   help=f"process large images in overlapping tiles of PX pixels "
                        f"(auto: {DEFAULT_TILE} px tiles for images over {megapixels(AUTO_TILE_ABOVE)})")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N",
                   help=f"refuse images with more pixels, as read, after every resize and as padded for the "
                        f"network (decompression bombs, extreme aspect ratios); default {MAX_PIXELS} "
                        f"({megapixels(MAX_PIXELS)}), which fits in 4 GB of memory; larger images need more. "
                        f"Styles, encoded whole, are also limited to {MAX_STYLE_PIXELS}")
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
    if args.content_size is not None and args.content_size < MIN_SIDE:
        raise IecastError(f"--content-size must be at least {MIN_SIDE} (got {args.content_size})")
    if args.style_size is not None and 0 < args.style_size < MIN_SIDE:
        raise IecastError(f"--style-size must be 0 (keep) or at least {MIN_SIDE} (got {args.style_size})")
    return {
        "alpha": args.alpha, "preserve_color": args.preserve_color, "content_size": args.content_size,
        "style_size": "auto" if args.style_size is None else args.style_size or None, "tile": parse_tile(args.tile), "max_pixels": args.max_pixels,
    }


def control_options(args: argparse.Namespace) -> StylizeOptions:
    """The `StylizeOptions` the control flags ask for, not yet checked (the style and mask counts are needed)."""
    return StylizeOptions(**control_kwargs(args), style_weights=args.style_weights)


def no_weights_message() -> str:
    return ("no trained iecast weights are installed (iecast.weights.PRETRAINED has no 'default' model): "
            "train a model with `iecast train` (see the README), turn its checkpoint into weights with "
            "`iecast export CHECKPOINT -o model.safetensors` and pass --weights model.safetensors, "
            "or pass --official DIR with the authors' three .pth files")


def build_stylizer(args: argparse.Namespace):
    """The `Stylizer` for --official or --weights, with a clear message when no weights exist."""
    if args.official:
        return Stylizer.from_official(**weights.official_files(args.official), device=args.device, precision=args.precision,
                                      compile=args.compile)
    if args.weights == "default" and "default" not in registry.PRETRAINED and not Path("default").exists():
        raise IecastError(no_weights_message())
    return Stylizer.from_pretrained(args.weights, device=args.device, precision=args.precision,
                                    compile=args.compile)


@contextlib.contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Show iecast's warnings (fixed-up inputs) as one `iecast: warning: ...` line each."""
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
    p.add_argument("--batch-size", type=int, metavar="N",
                   help="stylize up to N contents of equal size (after --content-size) in one pass, the style "
                        "prepared once; meant for GPUs (default: 1 on CPU, where batches measured slower; 4 on CUDA). "
                        "Same results up to float rounding; masks, --preserve-color and images large enough for "
                        "tiles go one at a time")
    add_control_arguments(p)
    add_model_arguments(p)
    p.set_defaults(func=run)


def output_path(output: Path, as_file: bool, content: Path, style_name: str, ext: str | None) -> Path:
    if as_file:
        return output
    suffix = f".{ext}" if ext else (content.suffix.lower() if content.suffix.lower() in OUTPUT_EXTENSIONS else ".jpg")
    return output / f"{content.stem}_stylized_{style_name}{suffix}"


def file_key(path: Path) -> tuple:
    """What identifies a file on disk: its device and inode when it exists (links, case-insensitive
    names), else its absolute, normalised path."""
    try:
        st = os.stat(path)
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("path", os.path.normcase(os.path.abspath(path)))


def check_targets(targets: list[Path], inputs: list[Path]) -> None:
    """Refuse, before any work, a result that would replace an input or another result."""
    input_keys = {file_key(p) for p in inputs}
    seen: dict[tuple, Path] = {}
    for target in targets:
        key = file_key(target)
        if key in input_keys:
            raise IecastError(f"{target}: is one of the input images; writing a result there would replace it, "
                              f"so give another output")
        if key in seen:
            raise IecastError(f"{target}: two results would be written to this file (inputs with the same name "
                              f"in different folders?); write them to separate outputs")
        seen[key] = target


def run(args: argparse.Namespace) -> int:
    with warnings_as_lines():
        contents = expand_images(args.content, "content")
        options = control_options(args)
        blended = args.style_weights is not None or args.mask is not None
        # a blend takes its styles as given: `-s a.jpg a.jpg --style-weights 0.3 0.7` is two styles
        styles = expand_images(args.style, "style", unique=not blended)
        # every job gets the same options: all styles (a blend) or one style each
        options = options.checked(len(styles) if blended else 1, None if args.mask is None else len(args.mask))
        jobs = [(c, styles, "+".join(s.stem for s in styles)) for c in contents] if blended else \
            [(c, [s], s.stem) for c in contents for s in styles]
        output = Path(args.output)
        wants_folder = args.output.endswith(("/", os.sep))
        as_file = output.suffix.lower() in OUTPUT_EXTENSIONS and not wants_folder
        if output.suffix and not as_file and not wants_folder and not output.is_dir():
            raise IecastError(f"{output}: unsupported output format {output.suffix}; use .jpg, .png or .webp")
        if as_file and len(jobs) > 1:
            raise IecastError(f"{output}: {len(jobs)} results to write; give a folder, not a file name")
        targets = [output_path(output, as_file, c, name, args.ext) for c, _, name in jobs]
        check_targets(targets, contents + styles + [Path(m) for m in args.mask or []])
        if args.batch_size is not None and args.batch_size < 1:
            raise IecastError(f"--batch-size must be at least 1 (got {args.batch_size})")
        check_writable(output.parent if as_file else output, args.output)
        stylizer = build_stylizer(args)
        code = stylize_all(args, stylizer, jobs, targets, options, tqdm)
    if code == 0:
        note_precision(stylizer)
    return code


def note_precision(stylizer) -> None:
    """After a successful run, say when the results were computed in reduced precision."""
    if stylizer.compute_precision != "fp32":
        how = "precision auto: native on this hardware" if stylizer.precision == "auto" else "as asked"
        print(f"iecast: note: computed in {stylizer.compute_precision} on {stylizer.device.type} ({how}); "
              f"--precision fp32 gives machine-independent results", file=sys.stderr)


def stylize_all(args: argparse.Namespace, stylizer, jobs: list, targets: list[Path], options, tqdm) -> int:
    """Run every job. With one job its error is the run's; with several, a bad input is reported
    and skipped, the others are finished, and a summary line ends the run (exit status 1).
    A write failure stops the run at once: the next writes would fail the same way. With a batch size
    over 1 (--batch-size; on CUDA by default) contents of equal size run together (`stylize_in_batches`)."""
    single = len(jobs) == 1
    errors: dict[Path, str] = {}  # bad input -> its error, in the order found

    def failed(image: Path, exc: IecastError) -> None:
        if single or isinstance(exc, WriteError):
            raise exc
        if image not in errors:
            errors[image] = str(exc)
            tqdm.write(f"iecast: error: {exc}", file=sys.stderr)

    histogram = options.preserve_color == "histogram"
    ready = {}  # style path -> PreparedStyle, or (histogram mode) its checked, resized tensor
    for s in dict.fromkeys(s for _, job_styles, _ in jobs for s in job_styles):
        try:
            ready[s] = stylizer.load_style(s, options.style_size, options.max_pixels) if histogram else \
                stylizer.prepare_style(s, options.style_size, max_pixels=options.max_pixels)
        except IecastError as exc:
            failed(s, exc)
    batch_size = args.batch_size or default_batch_size(stylizer.device)
    if batch_size > 1 and not single and batchable(options, args.mask is not None):
        with tqdm(total=len(jobs), desc="stylize", unit="image", disable=args.quiet or None) as bar:
            work = [(content, job_styles, target) for (content, job_styles, _), target in zip(jobs, targets)]
            written = stylize_in_batches(stylizer, work, ready, options, batch_size, failed, errors,
                                         lambda path: (tqdm.write(str(path)), bar.update(1)))
        return finish(len(jobs), written, errors)
    written = 0
    for (content, job_styles, _), target in tqdm(list(zip(jobs, targets)), desc="stylize", unit="image",
                                                disable=args.quiet or None):
        if content in errors or any(s not in ready for s in job_styles):
            continue
        def make(content=content, job_styles=job_styles):
            return stylizer.stylize(content, [ready[s] for s in job_styles], masks=args.mask, options=options)
        written += write_result(content, target, make, failed, lambda path: tqdm.write(str(path)))
    return finish(len(jobs), written, errors)


def finish(jobs: int, written: int, errors: dict[Path, str]) -> int:
    """0 when every result was written, else the summary line as the run's error."""
    if written < jobs:
        raise IecastError(f"{jobs - written} of {jobs} results failed "
                          f"({', '.join(p.name for p in errors)}); {written} written")
    return 0
