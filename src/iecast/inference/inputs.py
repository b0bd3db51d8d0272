"""Inputs: command-line arguments (files, folders, glob patterns) as lists of image files, and
images and masks as tensors, checked against the pixel limits and the model's minimum side."""
from __future__ import annotations

import contextlib
import glob
import os
import warnings
from pathlib import Path
from typing import Iterable, Iterator, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from iecast.errors import IecastError
from iecast.images import IMAGE_EXTENSIONS, MAX_PIXELS, MIN_SIDE, load_image, over_pixel_limit, pil_to_tensor, to_rgb
from iecast.inference.options import IecastWarning

ImageLike = Union[str, os.PathLike, Image.Image, torch.Tensor]
GLOB_CHARS = set("*?[")


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def images_in_folder(folder: Path) -> list[Path]:
    """The image files directly inside `folder`, sorted by name (hidden files skipped)."""
    return sorted(p for p in folder.iterdir() if is_image_file(p) and not p.name.startswith("."))


def expand_images(specs: Iterable[str], what: str = "image", unique: bool = True) -> list[Path]:
    """Expand each spec (a file, a folder of images, or a glob pattern) into image files.

    Files are kept as given (their content is checked when loaded); order is preserved and
    duplicates dropped, unless `unique` is False (a blend's styles: `a.jpg a.jpg` with two
    weights is two styles). Every spec must yield at least one file, or a one-line error says which.
    """
    found: list[Path] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir():
            files = images_in_folder(path)
            if not files:
                raise IecastError(f"{spec}: folder has no images ({', '.join(IMAGE_EXTENSIONS)})")
        elif path.exists():
            files = [path]
        elif GLOB_CHARS & set(spec):
            files = sorted(p for p in map(Path, glob.glob(str(path))) if is_image_file(p))
            if not files:
                raise IecastError(f"{spec}: pattern matches no {what} files")
        else:
            raise IecastError(f"{spec}: no such file or folder")
        found.extend(f for f in files if not unique or f not in found)
    if not found:
        raise IecastError(f"no {what} given")
    return found


@contextlib.contextmanager
def _pixel_limit_disabled() -> Iterator[None]:
    """PIL's own bomb check would refuse before ours; ours (with its flag) is the one that applies."""
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def input_label(image: ImageLike, default: str) -> str:
    """How errors name an input: its path, or `default` for images given in memory."""
    return str(image) if isinstance(image, (str, os.PathLike)) else default


def load_as_tensor(image: ImageLike, what: str = "image", max_pixels: int | None = MAX_PIXELS) -> torch.Tensor:
    """A path, PIL image or tensor as a float (N, 3, H, W) tensor in [0, 1], or a one-line error."""
    if isinstance(image, torch.Tensor):
        x = image if image.dim() == 4 else image.unsqueeze(0)
        if x.dim() != 4 or x.shape[1] != 3:
            raise IecastError(f"{what}: expected a (3, H, W) or (N, 3, H, W) tensor, got shape {tuple(image.shape)}")
        return x.float()
    if isinstance(image, Image.Image):
        if max_pixels is not None and image.width * image.height > max_pixels:
            raise over_pixel_limit(what, image.width, image.height, max_pixels)
        return pil_to_tensor(to_rgb(image))
    with _pixel_limit_disabled():
        return pil_to_tensor(load_image(image, max_pixels=max_pixels))


def check_min_side(x: torch.Tensor, label: str) -> None:
    """Refuse an image with a side below MIN_SIDE, the smallest the model takes."""
    h, w = x.shape[-2:]
    if min(h, w) < MIN_SIDE:
        raise IecastError(f"{label}: image is too small ({w}x{h}); each side needs at least {MIN_SIDE} pixels")


def load_mask(mask: ImageLike, size: tuple[int, int], label: str = "mask",
              max_pixels: int | None = MAX_PIXELS) -> torch.Tensor:
    """A mask as a (1, 1, H, W) tensor of 0/1 at the content's (H, W).

    Masks of another size are resized (nearest) and masks that are not binary are thresholded
    at half their range, each with a warning.
    """
    label = input_label(mask, label)
    if isinstance(mask, torch.Tensor):
        m = mask.float()
        while m.dim() < 4:
            m = m.unsqueeze(0)
        if m.shape[:2] != (1, 1):
            raise IecastError(f"{label}: expected a (H, W) mask tensor, got shape {tuple(mask.shape)}")
        top = 1.0
    else:
        if isinstance(mask, Image.Image):
            if max_pixels is not None and mask.width * mask.height > max_pixels:
                raise over_pixel_limit(label, mask.width, mask.height, max_pixels)
            image = mask
        else:
            with _pixel_limit_disabled():
                image = load_image(mask, max_pixels=max_pixels)
        m = torch.from_numpy(np.asarray(image.convert("L"), dtype=np.float32).copy())[None, None]
        top = 255.0
    if tuple(m.shape[-2:]) != tuple(size):
        warnings.warn(f"{label}: mask is {m.shape[-1]}x{m.shape[-2]} but the content is {size[1]}x{size[0]}; "
                      f"resized to fit", IecastWarning, stacklevel=3)
        m = F.interpolate(m, size=size, mode="nearest")
    binary = (m == 0) | (m == top)
    if not bool(binary.all()):
        warnings.warn(f"{label}: mask is not binary (values other than 0 and {top:g}); thresholded at {top / 2:g}",
                      IecastWarning, stacklevel=3)
    return (m >= top / 2).float()
