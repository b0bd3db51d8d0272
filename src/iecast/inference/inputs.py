"""Turning command-line arguments (files, folders, glob patterns) into lists of image files."""
from __future__ import annotations

import glob
from pathlib import Path
from typing import Iterable

from iecast.errors import IecastError
from iecast.images import IMAGE_EXTENSIONS

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
