"""Reading and writing images: every odd file becomes RGB or a one-line `IecastError`."""
from __future__ import annotations

import contextlib
import errno
import os
import uuid
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from iecast.errors import IecastError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
MAX_PIXELS = 20_000_000  # the default limit on every image, as read, after every resize and as padded (override per call);
# with the tiles of iecast.inference.tiling it keeps a CPU run within 4 GB of address space in fp32
MAX_STYLE_PIXELS = 2048 * 1024  # styles are encoded whole, not in tiles: about 2.4 GB of memory on a CPU at this size
MIN_SIDE = 16  # the smallest side the model takes (content, style, video frame, resize target); smaller is refused
WRITE_CHECK_BYTES = 4096  # written (then removed) where results will go, to find a full or read-only disk early


class WriteError(IecastError):
    """An output could not be written: a run stops here, since the next outputs would fail the same way."""


def megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} megapixels"


RAISE_PIXEL_LIMIT = "--max-pixels N (max_pixels=N in Python) raises it"  # every pixel-limit error ends with this


def over_pixel_limit(what: str, width: int, height: int, max_pixels: int, note: str = "") -> IecastError:
    """The one-line error for an image (or frame) of width x height over `max_pixels`."""
    return IecastError(f"{what}: {width}x{height} ({megapixels(width * height)}) is over the pixel limit of "
                       f"{max_pixels} pixels{note}; {RAISE_PIXEL_LIMIT}")


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB: EXIF orientation applied, alpha composited on white,
    CMYK and palette converted, 16-bit and float scaled down to 8 bits."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or arr.max() > 255 else 255.0
        if image.mode == "F" and arr.max() <= 1.0:
            peak = 1.0
        image = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def load_image(path: str | os.PathLike, max_pixels: int | None = MAX_PIXELS) -> Image.Image:
    """Open an image file fully as RGB, or raise a one-line error naming the file."""
    path = Path(path)
    if not path.exists():
        raise IecastError(f"{path}: no such file")
    if path.is_dir():
        raise IecastError(f"{path}: is a folder, not an image")
    if path.stat().st_size == 0:
        raise IecastError(f"{path}: empty file")
    try:
        with Image.open(path) as im:
            if max_pixels is not None and im.width * im.height > max_pixels:
                raise over_pixel_limit(str(path), im.width, im.height, max_pixels, " (a decompression bomb?)")
            im.load()
            image = to_rgb(im)
    except IecastError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise IecastError(f"{path}: not a readable image ({type(exc).__name__})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise IecastError(f"{path}: damaged or truncated image ({str(exc).splitlines()[0][:100]})") from exc
    if 0 in image.size:  # only a side of 0 is refused here; MIN_SIDE is checked where an image meets the model
        raise IecastError(f"{path}: image is empty ({image.width}x{image.height})")
    return image


def fit_within(image: Image.Image, size: int | None, min_side: int = 1) -> Image.Image:
    """Downscale (never upscale) so the longer side is at most `size`, keeping the aspect ratio.

    Neither side goes below `min_side`, so extreme aspect ratios stay usable by the model.
    """
    if size is None or max(image.size) <= size:
        return image
    scale = size / max(image.size)
    new = (max(min_side, round(image.width * scale)), max(min_side, round(image.height * scale)))
    return image.resize(new, Image.Resampling.LANCZOS)


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float tensor (1, 3, H, W) in [0, 1]."""
    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) tensor in [0, 1] -> RGB PIL image (clamped, rounded)."""
    if tensor.dim() == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {tensor.shape[0]}")
        tensor = tensor[0]
    scaled = tensor.detach().float().clamp(0, 1).mul_(255.0).add_(0.5)  # one float copy, not three
    arr = scaled.to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc).splitlines()[0][:100] or type(exc).__name__


def _existing_ancestor(folder: Path) -> Path:
    """`folder` itself if it exists, else its nearest ancestor that does."""
    folder = Path(os.path.abspath(folder))
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    return folder


def check_writable(folder: str | os.PathLike, target: str | os.PathLike | None = None) -> None:
    """Raise a one-line `WriteError` unless files can be written into `folder` (created if missing);
    `target`, the file or folder about to be written there, names the failure.

    Checked by writing a small hidden file (then removed) into the folder, or into its nearest
    existing ancestor, so a read-only or full disk, or a path through a file, is found before
    any work instead of after it; this works for root too, whom permission bits do not stop.
    """
    folder = Path(folder)
    target = folder if target is None else target
    existing = _existing_ancestor(folder)
    if not existing.is_dir():
        raise WriteError(f"{existing}: is a file, not a folder, so {target} cannot be written")
    probe = existing / f".iecast-write-check-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    created = False
    try:
        with open(probe, "xb") as f:
            created = True
            f.write(b"\0" * WRITE_CHECK_BYTES)
    except OSError as exc:
        raise WriteError(f"{target}: cannot write to {existing} ({_reason(exc)})") from None
    finally:
        if created:
            with contextlib.suppress(OSError):
                probe.unlink()


def save_image(image: Image.Image, path: str | os.PathLike, quality: int = 95) -> Path:
    """Write atomically (temp file in the same folder, then rename): never a half-written image.

    Failures (no space, read-only, a parent that is a file) are a one-line `WriteError`, and the
    temporary file is removed.
    """
    path = Path(path)
    ext = path.suffix.lower()
    formats = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
    if ext not in formats:
        raise IecastError(f"{path}: unsupported output format {ext or '(none)'}; use one of {', '.join(sorted(formats))}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        existing = _existing_ancestor(path.parent)
        if exc.errno in (errno.EEXIST, errno.ENOTDIR) or not existing.is_dir():
            raise WriteError(f"{path}: {existing} is a file, not a folder") from None
        raise WriteError(f"{path}: cannot create its folder ({_reason(exc)})") from None
    if path.is_dir():
        raise WriteError(f"{path}: is a folder; give a file name")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        kwargs = {"quality": quality} if formats[ext] in ("JPEG", "WEBP") else {}
        image.save(tmp, format=formats[ext], **kwargs)
        os.replace(tmp, path)
    except OSError as exc:
        raise WriteError(f"{path}: cannot write ({_reason(exc)})") from None
    finally:
        with contextlib.suppress(OSError):
            if os.path.lexists(tmp):
                tmp.unlink()
    return path
