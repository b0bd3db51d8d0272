"""Export the inference model as one self-contained graph: ONNX (for onnxruntime) or TorchScript.

The graph holds the encoder, the transform and the decoder, and does what `Stylizer.stylize`
does around the network, so a runtime needs nothing from iecast:

    inputs   content (1, 3, H, W) float32 RGB in [0, 1]   H, W dynamic (at least 17)
             style   (1, 3, Hs, Ws) float32 RGB in [0, 1] Hs, Ws dynamic (at least 17)
             alpha   (1,) float32 in [0, 1]               stylization strength
    output   output  (1, 3, H, W) float32 RGB in [0, 1]

The file's metadata records the encoder, the precision and `style_size`, the shorter side
styles had in training: the graph takes any style size, and the library resizes styles to
that one ('auto'), so a runtime should too for the same results.

Inside: the content is reflection-padded to a multiple of 16 (computed from its runtime shape),
stylized, cropped back to (H, W) and clamped. `alpha` blends T(c, s) with T(c, c) at the
feature level like `StyleTransferNetwork.forward`; the graph always computes both (a traced
graph has no branch), which is exact for alpha = 1.

ONNX goes through torch's TorchScript-based exporter (`dynamo=False`): with torch 2.13 it
exports `scaled_dot_product_attention(scale=1.0)` at opset 17 and keeps the padding arithmetic
dynamic, and it needs no onnxscript. With `fp16=True` weights and arithmetic are float16 while
the inputs and the output stay float32 (casts at the graph's edges).
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
import warnings
from pathlib import Path
from typing import Iterator, Literal, Union

import torch
from torch import nn
import torch.nn.functional as F

from iecast import __version__
from iecast.errors import IecastError
from iecast.models.network import StyleTransferNetwork
from iecast.inference.resize import PAD_MULTIPLE
from iecast.inference.stylizer import Stylizer, training_style_size

ONNX_OPSET = 17
INPUT_NAMES = ("content", "style", "alpha")
OUTPUT_NAME = "output"
EXPORTED_MIN_SIDE = PAD_MULTIPLE + 1  # above images.MIN_SIDE: the graph pads to the stride only, and relu5_1 needs 2x2
EXAMPLE_SIDE = 32
FORMATS = ("onnx", "torchscript")
Format = Literal["onnx", "torchscript"]
ModelLike = Union[StyleTransferNetwork, Stylizer, str, os.PathLike]


class ExportableStylizer(nn.Module):
    """`Stylizer.stylize` for one image as a traceable module: pad, stylize, crop, clamp.

    `compute_dtype=torch.float16` runs the network in half precision; inputs and output stay
    float32 so callers feed the same arrays either way.
    """

    def __init__(self, network: StyleTransferNetwork, compute_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.network = copy.deepcopy(network).to("cpu", compute_dtype).eval()
        self.compute_dtype = compute_dtype

    def forward(self, content: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        height, width = content.shape[-2], content.shape[-1]
        pad_bottom = (PAD_MULTIPLE - height % PAD_MULTIPLE) % PAD_MULTIPLE
        pad_right = (PAD_MULTIPLE - width % PAD_MULTIPLE) % PAD_MULTIPLE
        padded = F.pad(content.to(self.compute_dtype), (0, pad_right, 0, pad_bottom), mode="reflect")
        strength = alpha.to(self.compute_dtype).reshape(1, 1, 1, 1)
        out = self.network(padded, style.to(self.compute_dtype), strength)
        return out[:, :, :height, :width].clamp(0, 1).to(torch.float32)


def as_network(model: ModelLike) -> StyleTransferNetwork:
    """A `StyleTransferNetwork` from a network, a `Stylizer`, or a pretrained name / weights path."""
    if isinstance(model, StyleTransferNetwork):
        return model
    if isinstance(model, Stylizer):
        return model.network
    return Stylizer.from_pretrained(model).network


def export_metadata(network: StyleTransferNetwork, fp16: bool) -> dict[str, str]:
    """What a runtime needs to know about the graph, stored in the exported file."""
    return {
        "format": "iecast-exported-stylizer",
        "iecast_version": __version__,
        "encoder": network.encoder_id,
        "transform": network.transform.kind,
        "precision": "float16" if fp16 else "float32",
        "style_size": str(training_style_size(network.metadata)),
        "inputs": ("content (1,3,H,W) and style (1,3,Hs,Ws): float32 RGB in [0,1], sides >= 17, the style's shorter side "
                   "best at style_size (the model's training scale); alpha (1,): float32 in [0,1]"),
        "output": "output (1,3,H,W): float32 RGB in [0,1]",
    }


def example_inputs(side: int = EXAMPLE_SIDE) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs used to trace the graph (their sizes are not baked in)."""
    generator = torch.Generator().manual_seed(0)
    return (torch.rand(1, 3, side, side, generator=generator),
            torch.rand(1, 3, side, side, generator=generator),
            torch.tensor([1.0]))


@contextlib.contextmanager
def _quiet_tracing() -> Iterator[None]:
    """Hide the tracer's warnings we have checked: the batch size of 1 and the shape arithmetic
    are meant to be fixed/dynamic as traced, and the legacy exporter is chosen on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*[Cc]onstant folding.*")
        warnings.filterwarnings("ignore", category=FutureWarning)
        yield


@contextlib.contextmanager
def _atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise IecastError(f"{path}: could not write ({exc.strerror or exc})") from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def export_onnx(model: ModelLike, path: str | os.PathLike, fp16: bool = False, opset: int = ONNX_OPSET) -> Path:
    """Write the stylizer as one ONNX graph with dynamic content and style sizes."""
    try:
        import onnx
    except ImportError as exc:
        raise IecastError("ONNX export needs the export extra: pip install 'iecast[export]'") from exc
    network = as_network(model)
    module = ExportableStylizer(network, torch.float16 if fp16 else torch.float32)
    path = Path(path)
    dynamic_axes = {
        "content": {2: "height", 3: "width"},
        "style": {2: "style_height", 3: "style_width"},
        OUTPUT_NAME: {2: "height", 3: "width"},
    }
    with _atomic_output(path) as tmp, _quiet_tracing(), torch.no_grad():
        torch.onnx.export(module, example_inputs(), str(tmp), dynamo=False, opset_version=opset,
                          input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME], dynamic_axes=dynamic_axes)
        graph = onnx.load(str(tmp))
        graph.producer_name = "iecast"
        graph.producer_version = __version__
        for key, value in export_metadata(network, fp16).items():
            graph.metadata_props.add(key=key, value=value)
        onnx.checker.check_model(graph)
        onnx.save(graph, str(tmp))
    return path


def export_torchscript(model: ModelLike, path: str | os.PathLike, fp16: bool = False) -> Path:
    """Write the stylizer as a traced TorchScript module (`torch.jit.load` runs it without iecast)."""
    network = as_network(model)
    module = ExportableStylizer(network, torch.float16 if fp16 else torch.float32)
    path = Path(path)
    meta = json.dumps(export_metadata(network, fp16))
    with _atomic_output(path) as tmp, _quiet_tracing(), torch.no_grad():
        traced = torch.jit.trace(module, example_inputs(), check_trace=False)
        torch.jit.save(traced, str(tmp), _extra_files={"iecast.json": meta})
    return path


def export_model(model: ModelLike, path: str | os.PathLike, format: Format, fp16: bool = False) -> Path:
    """Export to `format` ('onnx' or 'torchscript')."""
    if format == "onnx":
        return export_onnx(model, path, fp16=fp16)
    if format == "torchscript":
        return export_torchscript(model, path, fp16=fp16)
    raise IecastError(f"unknown export format {format!r}; expected one of {', '.join(FORMATS)}")


def run_exported(path: str | os.PathLike, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Run an exported file (.onnx with onnxruntime, otherwise TorchScript) on tensors in [0, 1]."""
    path = Path(path)
    alpha_array = torch.tensor([float(alpha)], dtype=torch.float32)
    if path.suffix.lower() == ".onnx":
        try:
            import onnxruntime
        except ImportError as exc:
            raise IecastError("running ONNX needs onnxruntime: pip install 'iecast[export]'") from exc
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feeds = {"content": content.float().numpy(), "style": style.float().numpy(), "alpha": alpha_array.numpy()}
        return torch.from_numpy(session.run([OUTPUT_NAME], feeds)[0])
    with torch.no_grad(), _quiet_tracing():
        return torch.jit.load(str(path), map_location="cpu")(content.float(), style.float(), alpha_array)
