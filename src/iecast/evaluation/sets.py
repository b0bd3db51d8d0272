"""What an evaluation reads: image sets (a folder or a .txt list of files) and video clips (a video
file or a folder of frames)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from iecast.errors import IecastError
from iecast.evaluation.methods import safe_label
from iecast.images import IMAGE_EXTENSIONS, load_image, pil_to_tensor


def _read_list_file(list_file: Path) -> list[Path]:
    """Image paths of a .txt list (one per line, '#' comments; relative to the list's folder)."""
    files = []
    for number, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = Path(os.path.normpath(list_file.parent / Path(entry).expanduser()))
        if not path.is_file():
            raise IecastError(f"{list_file}:{number}: {entry}: no such file")
        files.append(path)
    return files


def list_eval_images(folder: str | os.PathLike, limit: int | None = None, what: str = "image") -> list[Path]:
    """An evaluation set: the image files directly in a folder (sorted by name) or of a .txt list file
    (in its order), first `limit`; a one-line error for a missing or empty folder, and for two files
    with the same stem (outputs and report rows are named by stem). Training's recursive gathering
    over several sources is `iecast.training.data.list_images`."""
    folder = Path(folder)
    if folder.is_file() and folder.suffix.lower() == ".txt":
        files = _read_list_file(folder)
    elif not folder.is_dir():
        raise IecastError(f"{folder}: no such folder or .txt list ({what}s)")
    else:
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                       and not p.name.startswith("."))
    if not files:
        raise IecastError(f"{folder}: empty: no {what} files ({', '.join(IMAGE_EXTENSIONS)})")
    stems = [p.stem for p in files]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise IecastError(f"{folder}: several files share the name {duplicates[0]!r} (different extensions); rename them")
    if limit is not None:
        if limit < 1:
            raise IecastError(f"--limit must be >= 1 (got {limit})")
        files = files[:limit]
    return files


def load_frames(source: str | os.PathLike, max_frames: int | None = None) -> list[Image.Image]:
    """Frames of a video file (PyAV) or of a folder of images (sorted by name), as RGB PIL images."""
    source = Path(source)
    if source.is_dir():
        files = list_eval_images(source, what="video frame")
        frames = [load_image(p) for p in files[:max_frames]]
    elif source.is_file():
        try:
            import av
        except ImportError as exc:
            raise IecastError(f"{source}: reading video files needs PyAV: pip install 'iecast[video]' (or pass a folder of frames)") from exc
        frames = []
        try:
            with av.open(str(source)) as container:
                for frame in container.decode(video=0):
                    frames.append(frame.to_image().convert("RGB"))
                    if max_frames is not None and len(frames) >= max_frames:
                        break
        except Exception as exc:
            raise IecastError(f"{source}: not a readable video ({type(exc).__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''})") from exc
    else:
        raise IecastError(f"{source}: no such video file or frame folder")
    if len(frames) < 2:
        raise IecastError(f"{source}: a video needs at least 2 frames (found {len(frames)})")
    sizes = {f.size for f in frames}
    if len(sizes) > 1:
        raise IecastError(f"{source}: frames have different sizes ({', '.join(f'{w}x{h}' for w, h in sorted(sizes)[:3])})")
    return frames


def frames_tensor(frames: Sequence[Image.Image]) -> torch.Tensor:
    """PIL frames -> (T, 3, H, W) in [0, 1]."""
    return torch.cat([pil_to_tensor(f) for f in frames])


def video_name(source: str | os.PathLike) -> str:
    """A clip's name in reports and cache folders: the file's stem or the frame folder's name."""
    path = Path(source)
    return safe_label(path.stem if path.is_file() else path.name)
