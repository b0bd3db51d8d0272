"""`iecast export`: turn a model into a file another runtime (or iecast) can load.

    iecast export SOURCE -o model.onnx                  # ONNX graph (onnxruntime, no iecast needed)
    iecast export SOURCE -o model.pt --format torchscript
    iecast export CHECKPOINT -o model.safetensors       # training checkpoint -> iecast inference weights

SOURCE is a pretrained name, an iecast stylizer `.safetensors`, or (for `safetensors`, and via
it for the other formats) a training checkpoint. The format defaults from the output's suffix.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from iecast import weights
from iecast.errors import IecastError
from iecast.inference import export
from iecast.inference.options import StylizeOptions
from iecast.inference.stylizer import Stylizer
from iecast.training import checkpoints
from iecast.weights import registry

SUFFIX_FORMATS = {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript", ".torchscript": "torchscript",
                  ".safetensors": "safetensors"}
FORMAT_CHOICES = ("safetensors", "onnx", "torchscript")
# --check's largest allowed gap to the fp32 PyTorch result (grey levels / 255): fp32 files agree to
# about 1e-5, fp16 ones to about 5e-3.
CHECK_TOLERANCE = {False: 1e-3, True: 2e-2}
CHECK_OPTIONS = StylizeOptions(alpha=0.8)  # --check's reference stylization (tensors: styles keep their size)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model to safetensors (from a training checkpoint), ONNX or TorchScript")
    p.add_argument("source", help="pretrained name, iecast .safetensors stylizer, or training checkpoint")
    p.add_argument("-o", "--output", required=True, help="output file (.onnx, .pt, .safetensors)")
    p.add_argument("--format", choices=FORMAT_CHOICES, default=None,
                   help="output format (default: from the output's suffix)")
    p.add_argument("--fp16", action="store_true", help="store weights (and, for onnx/torchscript, compute) in float16")
    p.add_argument("--with-training-state", action="store_true",
                   help="safetensors from a training checkpoint: also write the discriminator and heads beside it")
    p.add_argument("--check", action="store_true",
                   help="after an onnx/torchscript export, run it on a random 64x48 pair and compare with PyTorch in fp32: "
                        f"passes within {CHECK_TOLERANCE[False]:g} ({CHECK_TOLERANCE[True]:g} with --fp16), else exit 1")
    p.set_defaults(func=run)


def output_format(output: str, requested: str | None) -> str:
    """The requested format, or the one the output's suffix names."""
    if requested:
        return requested
    suffix = Path(output).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise IecastError(f"{output}: cannot tell the format from the suffix {suffix or '(none)'}; pass --format {'|'.join(FORMAT_CHOICES)}")
    return SUFFIX_FORMATS[suffix]


def is_stylizer_file(source: str) -> bool:
    """True for a pretrained name or an iecast stylizer .safetensors (not a training checkpoint)."""
    if source in registry.PRETRAINED:
        return True
    try:
        weights.read_stylizer(source)
    except IecastError:
        return False
    return True


def checkpoint_to_stylizer(source: str, output: Path, fp16: bool, with_training_state: bool = False) -> Path:
    """Convert a training checkpoint with `iecast.training.checkpoints.export_checkpoint`."""
    extra = {"with_training_state": True} if with_training_state else {}
    result = checkpoints.export_checkpoint(source, output, fp16, **extra)
    return Path(result) if result is not None else output


def run(args: argparse.Namespace) -> int:
    fmt = output_format(args.output, args.format)
    output = Path(args.output)
    if fmt == "safetensors":
        print(checkpoint_to_stylizer(args.source, output, args.fp16, args.with_training_state))
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        source = args.source
        if not is_stylizer_file(source):
            source = str(checkpoint_to_stylizer(source, Path(scratch) / "converted.safetensors", fp16=False))
        stylizer = Stylizer.from_pretrained(source, device="cpu", precision="fp32")
        path = export.export_model(stylizer, output, fmt, fp16=args.fp16)
    print(path)
    if args.check:
        check_export(stylizer, path, args.fp16)
    return 0


def check_export(stylizer, path: Path, fp16: bool) -> None:
    """Run the exported file and the fp32 PyTorch stylizer on one random pair; fail past the tolerance."""
    content, style = torch.rand(1, 3, 64, 48), torch.rand(1, 3, 48, 64)
    reference = stylizer.stylize(content, style, options=CHECK_OPTIONS)
    gap = float((export.run_exported(path, content, style, alpha=CHECK_OPTIONS.alpha) - reference).abs().max())
    tolerance = CHECK_TOLERANCE[fp16]
    verdict = "passed" if gap <= tolerance else "FAILED"
    print(f"check {verdict}: largest difference from PyTorch fp32 at 64x48, alpha {CHECK_OPTIONS.alpha:g}: {gap:.3g} "
          f"(tolerance {tolerance:g})")
    if gap > tolerance:
        raise IecastError(f"{path}: the exported model differs from PyTorch by {gap:.3g}, over the tolerance {tolerance:g}")
