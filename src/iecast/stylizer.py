"""`Stylizer`: the user-facing inference pipeline around a `StyleTransferNetwork`."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import torch
import torch.nn.functional as F
from PIL import Image

from iecast import weights
from iecast.images import load_image, pil_to_tensor, tensor_to_pil
from iecast.models.network import StyleTransferNetwork

ImageLike = Union[str, os.PathLike, Image.Image, torch.Tensor]
PAD_MULTIPLE = 16


def _as_tensor(image: ImageLike) -> torch.Tensor:
    if isinstance(image, torch.Tensor):
        return image if image.dim() == 4 else image.unsqueeze(0)
    if isinstance(image, Image.Image):
        return pil_to_tensor(image.convert("RGB"))
    return pil_to_tensor(load_image(image))


def pad_to_multiple(x: torch.Tensor, multiple: int = PAD_MULTIPLE) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflection-pad bottom/right to a multiple of `multiple`; returns the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


class Stylizer:
    """Repaint a content image in a style image's style.

    Build with `Stylizer.from_pretrained(name_or_path)` (iecast weights) or
    `Stylizer.from_official(decoder=..., transformer=..., vgg=...)` (the authors' files).
    """

    def __init__(self, network: StyleTransferNetwork, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()

    @property
    def encoder_id(self) -> str:
        return getattr(self.network, "encoder_id", "unknown")

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = "default", device: str = "cpu") -> "Stylizer":
        """Load a shipped model by name (see `iecast.weights.PRETRAINED`) or an iecast .safetensors file."""
        return cls(weights.load_stylizer(weights.resolve_stylizer_path(name_or_path)), device)

    @classmethod
    def from_official(cls, decoder: str | os.PathLike, transformer: str | os.PathLike, vgg: str | os.PathLike,
                      device: str = "cpu") -> "Stylizer":
        """Load the authors' decoder_iter_*.pth, transformer_iter_*.pth and vgg_normalised.pth."""
        return cls(weights.load_official(decoder, transformer, vgg), device)

    @torch.inference_mode()
    def stylize(self, content: ImageLike, style: ImageLike, alpha: float = 1.0) -> Image.Image | torch.Tensor:
        """Stylize `content` with `style`; the output has the content's size.

        Paths and PIL images give a PIL image; tensors (N or 1, 3, H, W) in [0, 1] give a tensor.
        """
        if not 0.0 <= alpha <= 1.0:
            from iecast.errors import IecastError

            raise IecastError(f"alpha must be in [0, 1] (got {alpha})")
        c = _as_tensor(content).to(self.device, torch.float32)
        s = _as_tensor(style).to(self.device, torch.float32)
        c_padded, (h, w) = pad_to_multiple(c)
        out = self.network(c_padded, s, alpha=alpha)[..., :h, :w].clamp(0, 1)
        if isinstance(content, torch.Tensor):
            return out if content.dim() == 4 else out[0]
        return tensor_to_pil(out)
