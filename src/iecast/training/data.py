"""Training data: image lists, robust decoding, and a deterministic infinite batch stream.

Batches are a pure function of (seed, iteration, rank): resuming at iteration i reproduces
exactly the batches a straight run would have seen, with no sampler state to save.
"""
from __future__ import annotations

import functools
import random
import warnings
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from iecast.errors import IecastError
from iecast.images import IMAGE_EXTENSIONS, load_image, pil_to_tensor


def list_images(sources: list[str]) -> list[Path]:
    """All images under folders (recursive) and in .txt list files (one path per line), for training.
    (An evaluation set, one folder's images with unique stems, is `iecast.evaluation.sets.list_eval_images`.)"""
    files: list[Path] = []
    for source in sources:
        path = Path(source).expanduser()
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        elif path.is_file() and path.suffix.lower() == ".txt":
            base = path.parent
            for line in path.read_text().splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    entry = Path(line.strip()).expanduser()
                    files.append(entry if entry.is_absolute() else base / entry)
        elif path.is_file():
            files.append(path)
        else:
            raise IecastError(f"{path}: no such folder or list file")
    return files


def check_images(files: list[Path], what: str) -> list[Path]:
    """Keep the files whose headers decode; warn once per bad file; error if none is left."""
    good = []
    for path in files:
        try:
            with Image.open(path) as im:
                im.verify()
            good.append(path)
        except Exception as exc:
            warnings.warn(f"skipping unreadable {what} image {path} ({type(exc).__name__})", stacklevel=2)
    if not good:
        raise IecastError(f"no readable {what} images in {', '.join(sorted({str(f.parent) for f in files})) or 'the given sources'}")
    return good


def resize_and_crop(image: Image.Image, resize: int, crop: int, mode: str, rng: random.Random) -> torch.Tensor:
    """Resize (square: resize x resize; shorter-side: shorter side = resize, aspect kept), then
    take a random crop x crop window. Images smaller than the crop end up upscaled."""
    if mode == "square":
        image = image.resize((resize, resize), Image.BICUBIC)
    else:
        scale = resize / min(image.size)
        image = image.resize((max(crop, round(image.width * scale)), max(crop, round(image.height * scale))), Image.BICUBIC)
    left = rng.randint(0, image.width - crop)
    top = rng.randint(0, image.height - crop)
    return pil_to_tensor(image.crop((left, top, left + crop, top + crop)))[0]


@functools.lru_cache(maxsize=8)
def _epoch_permutation(n: int, key: str, epoch: int) -> list[int]:
    order = list(range(n))
    random.Random(f"{key}:{epoch}").shuffle(order)
    return order


class PairStream(Dataset):
    """Item `iteration` is (h contents, h styles, number of unreadable files replaced).

    Each pool is read as an endless stream of epochs, each a fresh seeded shuffle (sampling
    without replacement within an epoch). Ranks read disjoint positions of the stream.
    """

    def __init__(self, contents: list[Path], styles: list[Path], h: int, resize: int, crop: int,
                 resize_mode: str = "square", seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        self.pools = {"content": contents, "style": styles}
        self.h, self.resize, self.crop, self.resize_mode = h, resize, crop, resize_mode
        self.seed, self.rank, self.world_size = seed, rank, world_size

    def __len__(self) -> int:
        return 2**62

    def _image(self, pool: str, position: int, rng: random.Random) -> tuple[torch.Tensor, int]:
        files = self.pools[pool]
        for attempt in range(len(files)):
            p = position + attempt * 7919
            path = files[_epoch_permutation(len(files), f"{self.seed}:{pool}", p // len(files))[p % len(files)]]
            try:
                return resize_and_crop(load_image(path), self.resize, self.crop, self.resize_mode, rng), attempt
            except IecastError as exc:
                warnings.warn(f"skipping unreadable {pool} image: {exc}", stacklevel=2)
        raise IecastError(f"no readable {pool} images left")

    def __getitem__(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        rng = random.Random(f"{self.seed}:{iteration}:{self.rank}")
        base = (iteration * self.world_size + self.rank) * self.h
        batch, bad = {}, 0
        for pool in ("content", "style"):
            images = []
            for j in range(self.h):
                image, skipped = self._image(pool, base + j, rng)
                images.append(image)
                bad += skipped
            batch[pool] = torch.stack(images)
        return batch["content"], batch["style"], bad


class _FromIteration(torch.utils.data.Sampler):
    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = start, stop

    def __iter__(self):
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start


def make_loader(stream: PairStream, start: int, stop: int, workers: int) -> DataLoader:
    """Batches for iterations [start, stop), decoded by `workers` processes."""
    return DataLoader(stream, batch_size=None, sampler=_FromIteration(start, stop), num_workers=workers,
                      persistent_workers=False, prefetch_factor=2 if workers else None)
