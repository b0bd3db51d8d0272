"""The methods the harness compares (`--method`, optionally `label=spec`): parsing a spec, loading what
it needs (weights are checked before any output is written), and precomputed outputs in a folder."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from safetensors import safe_open

from iecast.errors import IecastError
from iecast.evaluation.gatys import GatysConfig, GatysStylizer
from iecast.evaluation.peers import StylitePeer
from iecast.images import IMAGE_EXTENSIONS
from iecast.inference.stylizer import Stylizer
from iecast.models.vgg import VGGEncoder
from iecast.weights import OFFICIAL_ENCODER, official_files, resolve_stylizer_path, sha256_file

OUTPUT_SEPARATOR = "_stylized_"
JUDGED_PRECISION = "fp32"  # stylize in fp32 so reports do not depend on the machine's bf16 support


@dataclass(frozen=True)
class MethodSpec:
    """A parsed `--method` value: `label` names its folder and its rows in the reports."""

    label: str
    kind: str
    target: str
    spec: str


def safe_label(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "method"


def parse_method(spec: str) -> MethodSpec:
    """Parse `[label=]iecast:<name-or-path>`, `official:<dir>`, `gatys`, `stlite` or `folder:<dir>`."""
    label = None
    body = spec
    if "=" in spec.split(":", 1)[0]:
        label, body = spec.split("=", 1)
    kind, _, target = body.partition(":")
    if kind == "gatys":
        if target:
            raise IecastError(f"--method {spec}: 'gatys' takes no argument (use --gatys-steps and friends)")
        default = "gatys"
    elif kind == "stlite":
        if target:
            raise IecastError(f"--method {spec}: 'stlite' takes no argument (its strength comes from --alphas)")
        default = "stlite"
    elif kind in ("iecast", "official", "folder"):
        if not target:
            raise IecastError(f"--method {spec}: '{kind}:' needs a {'name or path' if kind == 'iecast' else 'folder'}")
        stem = Path(target).stem if kind == "iecast" and target.endswith(".safetensors") else Path(target.rstrip("/")).name
        default = f"{kind}-{stem}"
    else:
        raise IecastError(f"--method {spec}: unknown method kind {kind!r}; use iecast:<name-or-path>, official:<dir>, gatys, stlite or folder:<dir>")
    return MethodSpec(label=safe_label(label or default), kind=kind, target=target, spec=spec)


def _stylizer_header(path: Path) -> dict[str, str]:
    """The metadata header of an iecast .safetensors file (without loading its tensors)."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except Exception:
        return {}


@dataclass
class Method:
    """Something that turns (content, style) tensors into an output tensor, with a description.

    `stylize_at(content, style, alpha)` is set for methods with a strength knob (alpha, or the
    peer's strength); `alpha` is the value `stylize` uses (None without a knob) and `curve` the
    method's label before a sweep split it (see `iecast.evaluation.tradeoff.expand_sweep`).
    """

    spec: MethodSpec
    description: dict
    stylize: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None
    stylize_at: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor] | None = None
    alpha: float | None = None
    curve: str | None = None

    @property
    def label(self) -> str:
        return self.spec.label


def build_method(spec: MethodSpec, encoder: VGGEncoder, gatys: GatysConfig = GatysConfig(),
                 device: str = "cpu") -> Method:
    """Load what a method needs (weights are checked here, before any output is written)."""
    if spec.kind == "iecast":
        path = resolve_stylizer_path(spec.target)
        stylizer = Stylizer.from_pretrained(str(path), device=device, precision=JUDGED_PRECISION)
        header = _stylizer_header(path)
        description = {"weights": spec.target, "sha256": sha256_file(path), "encoder": header.get("encoder", stylizer.encoder_id),
                       "transform": header.get("transform", "unknown")}
        return _with_knob(spec, description, lambda c, s, a: stylizer.stylize(c.to(device), s.to(device), alpha=a).cpu())
    if spec.kind == "official":
        files = official_files(spec.target)
        stylizer = Stylizer.from_official(**files, device=device, precision=JUDGED_PRECISION)
        description = {k: str(v) for k, v in files.items()}
        description.update({"sha256": {k: sha256_file(v) for k, v in files.items()}, "encoder": OFFICIAL_ENCODER, "transform": "sanet"})
        return _with_knob(spec, description, lambda c, s, a: stylizer.stylize(c.to(device), s.to(device), alpha=a).cpu())
    if spec.kind == "stlite":
        peer = StylitePeer(device=device)
        return _with_knob(spec, peer.describe(), lambda c, s, a: peer.stylize(c, s, strength=a))
    if spec.kind == "gatys":
        gatys_stylizer = GatysStylizer(encoder, gatys)
        description = {"encoder": gatys_stylizer.encoder_id, **asdict(gatys)}
        description["style_taps"] = list(gatys.style_taps)
        return Method(spec, description, lambda c, s: gatys_stylizer.stylize(c.to(device), s.to(device)).cpu())
    if spec.kind == "folder":
        folder = Path(spec.target)
        if not folder.is_dir():
            raise IecastError(f"{folder}: no such folder (folder: needs precomputed outputs)")
        return Method(spec, {"folder": str(folder)}, None)
    raise IecastError(f"unknown method kind {spec.kind!r}")


def _with_knob(spec: MethodSpec, description: dict,
               stylize_at: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> Method:
    """A method with a strength knob; `stylize` runs it at full strength (1.0)."""
    return Method(spec, description, lambda c, s: stylize_at(c, s, 1.0), stylize_at=stylize_at, alpha=1.0)


def trained_encoder(spec: MethodSpec) -> str | None:
    """The encoder a method's weights were trained with, from the file's header (None: unknown or none)."""
    if spec.kind == "iecast":
        return _stylizer_header(resolve_stylizer_path(spec.target)).get("encoder") or None
    if spec.kind == "official":
        return OFFICIAL_ENCODER
    return None


def output_name(content: Path, style: Path, ext: str) -> str:
    return f"{content.stem}{OUTPUT_SEPARATOR}{style.stem}.{ext}"


def folder_outputs(folder: Path, contents: Sequence[Path], styles: Sequence[Path]) -> dict[tuple[str, str], Path]:
    """Map each (content, style) to its precomputed output; every pair must have exactly one."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    by_stem: dict[str, list[Path]] = {}
    for p in files:
        by_stem.setdefault(p.stem, []).append(p)
    found, missing = {}, []
    for c in contents:
        for s in styles:
            candidates = by_stem.get(f"{c.stem}{OUTPUT_SEPARATOR}{s.stem}", [])
            if len(candidates) > 1:
                raise IecastError(f"{folder}: several outputs for {c.stem} x {s.stem}: {', '.join(p.name for p in candidates)}")
            if candidates:
                found[(c.stem, s.stem)] = candidates[0]
            else:
                missing.append(f"{c.stem}{OUTPUT_SEPARATOR}{s.stem}")
    if missing:
        raise IecastError(f"{folder}: mismatched counts: {len(found)} outputs for {len(contents)} contents x {len(styles)} styles "
                          f"= {len(contents) * len(styles)} pairs; first missing: {missing[0]}.*")
    return found
