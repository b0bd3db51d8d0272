"""Uploads checked from their header only (never decoded to check them) and the sample styles offered in
the picker."""
from __future__ import annotations

import importlib.resources
import io
import re
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from iecast.images import IMAGE_EXTENSIONS

MIN_UPLOAD_SIDE = 17  # the web API's own floor for uploads, as released; the model itself takes images.MIN_SIDE
STYLE_LIST = "styles.txt"  # in a samples folder: the files offered as styles, in order (the first is pre-selected)


class UploadRejected(Exception):
    """A request the server refuses: an HTTP status and a one-line message for the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def inspect_upload(data: bytes, what: str, max_pixels: int) -> tuple[int, int]:
    """(width, height) from an upload's header, without decoding its pixels; or `UploadRejected`."""
    if not data:
        raise UploadRejected(400, f"{what}: the file is empty")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Image.DecompressionBombError as exc:
        raise UploadRejected(413, f"{what}: refused as a decompression bomb ({str(exc).split('.')[0][:80]})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UploadRejected(400, f"{what}: not a readable image; upload a JPEG, PNG, WebP, BMP or TIFF file") from exc
    if width * height > max_pixels:
        raise UploadRejected(413, f"{what}: {width}x{height} is over the limit of {max_pixels / 1e6:.0f} megapixels")
    if min(width, height) < MIN_UPLOAD_SIDE:
        raise UploadRejected(400, f"{what}: {width}x{height} is too small; both sides must be at least {MIN_UPLOAD_SIDE} pixels")
    return width, height


def default_samples_dir() -> Path | None:
    """The package's sample folder (`iecast/assets/samples`), if this installation has one."""
    root = Path(str(importlib.resources.files("iecast.assets").joinpath("samples")))
    return root if root.is_dir() else None


def list_sample_styles(samples_dir: Path | None) -> dict[str, Path]:
    """{name: file} of the style images offered in the picker, the page's pre-selected one first.

    Uses `<dir>/style` or `<dir>/styles` where present, otherwise the images directly in `<dir>`.
    A `styles.txt` there (one file name a line, `#` comments) names the styles and their order;
    the package's samples have one, so the demo's photo beside them is not offered as a style.
    Without it: every image, sorted by name.
    """
    if samples_dir is None or not Path(samples_dir).is_dir():
        return {}
    root = Path(samples_dir)
    for sub in ("style", "styles"):
        if (root / sub).is_dir():
            root = root / sub
            break
    is_image = lambda p: p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")  # noqa: E731
    if (root / STYLE_LIST).is_file():
        lines = (line.split("#")[0].strip() for line in (root / STYLE_LIST).read_text(encoding="utf-8").splitlines())
        listed = [root / name for name in lines if name and "/" not in name and "\\" not in name]
        return {p.stem: p for p in listed if is_image(p)}
    return {p.stem: p for p in sorted(root.iterdir()) if is_image(p)}


def display_name(stem: str) -> str:
    return re.sub(r"[_\-]+", " ", stem).strip().capitalize()
