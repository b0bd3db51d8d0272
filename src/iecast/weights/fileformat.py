"""Our stylizer file format: decoder + transform tensors as safetensors with iecast metadata
in the header; writing, reading, validating every header field and tensor, and loading."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from iecast import __version__
from iecast.errors import IecastError
from iecast.models.network import StyleTransferNetwork
from iecast.models.transform import TRANSFORMS, build_transform
from iecast.models.vgg import VGGEncoder
from iecast.weights.cache import load_into, publish
from iecast.weights.encoders import ENCODERS, load_encoder

FORMAT_VERSION = "1"


def save_stylizer(path: str | Path, network: StyleTransferNetwork, encoder_id: str, config: dict | None = None,
                  dtype: torch.dtype = torch.float32) -> Path:
    """Write decoder + transform as safetensors with iecast metadata in the header, atomically."""
    path = Path(path)
    tensors = {f"decoder.{k}": v for k, v in network.decoder.state_dict().items()}
    tensors.update({f"transform.{k}": v for k, v in network.transform.state_dict().items()})
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in tensors.items()}
    meta = {
        "format": "iecast-stylizer", "format_version": FORMAT_VERSION, "iecast_version": __version__,
        "encoder": encoder_id, "transform": network.transform.kind, "config": json.dumps(config or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp), metadata=meta)
    publish(tmp, path)
    return path


def read_safetensors(path: str | Path, what: str = "safetensors file") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file, or "PATH: not a readable WHAT (reason)"."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            return {k: fh.get_tensor(k) for k in fh.keys()}, meta
    except Exception as exc:
        raise IecastError(f"{path}: not a readable {what} ({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})") from exc


def read_stylizer(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of an iecast stylizer file, or a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise IecastError(f"{path}: no such file")
    tensors, meta = read_safetensors(path)
    if meta.get("format") != "iecast-stylizer":
        raise IecastError(f"{path}: not an iecast stylizer (no iecast metadata in the header)")
    check_stylizer_header(path, meta)
    check_stylizer_tensors(path, tensors)
    return tensors, meta


STYLIZER_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def check_stylizer_header(path: str | Path, meta: dict[str, str]) -> None:
    """Every header field a loader reads, checked before anything is built: a one-line error
    for a format version this iecast does not know, an unknown encoder or transform, or a
    `config` that is not a JSON table."""
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise IecastError(f"{path}: stylizer format version {version!r} is not the {FORMAT_VERSION!r} this iecast "
                          f"{__version__} reads")
    encoder = meta.get("encoder")
    if encoder not in ENCODERS:
        raise IecastError(f"{path}: unknown encoder {_short(encoder)} in the header; known: {', '.join(ENCODERS)}")
    transform = meta.get("transform", "sanet")
    if transform not in TRANSFORMS:
        raise IecastError(f"{path}: unknown transform {_short(transform)} in the header; known: {', '.join(TRANSFORMS)}")
    try:
        config = json.loads(meta.get("config") or "{}")
    except ValueError:
        config = None
    if not isinstance(config, dict):
        raise IecastError(f"{path}: the header's config is not a JSON table")
    for key in ("resize", "iterations_trained"):
        value = config.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise IecastError(f"{path}: the header's config has {key} = {_short(value)}, not a count")


def check_stylizer_tensors(path: str | Path, tensors: dict[str, torch.Tensor]) -> None:
    """Only decoder and transform tensors, in a float type, every value finite: NaN or inf
    weights would otherwise give a black or garbage image without an error."""
    for name, tensor in tensors.items():
        if not name.startswith(("decoder.", "transform.")):
            raise IecastError(f"{path}: unexpected tensor {_short(name)} (an iecast stylizer holds decoder.* and transform.*)")
        if tensor.dtype not in STYLIZER_DTYPES:
            raise IecastError(f"{path}: tensor {name} is {str(tensor.dtype).replace('torch.', '')}; "
                              f"weights must be float32, float16 or bfloat16")
        if not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise IecastError(f"{path}: tensor {name} has {bad} non-finite value{'s' if bad > 1 else ''} (NaN or inf); "
                              f"the file is damaged or came from a diverged training run")


def _short(value: object, limit: int = 60) -> str:
    """repr() of a header value, cut to one short line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def load_stylizer(path: str | Path, encoder: VGGEncoder | None = None) -> StyleTransferNetwork:
    """Build the network from an iecast stylizer file; its recorded encoder must match."""
    tensors, meta = read_stylizer(path)
    encoder_id = meta["encoder"]
    if encoder is None:
        encoder = load_encoder(encoder_id)
    elif encoder.source != encoder_id:
        raise IecastError(f"{path}: trained with encoder {encoder_id!r}, but was given {encoder.source!r}")
    network = StyleTransferNetwork(encoder, build_transform(meta.get("transform", "sanet")), metadata=meta)
    load_into(network.decoder, {k[8:]: v for k, v in tensors.items() if k.startswith("decoder.")}, path, "decoder")
    load_into(network.transform, {k[10:]: v for k, v in tensors.items() if k.startswith("transform.")}, path, "transform")
    return network.eval()
