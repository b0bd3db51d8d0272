"""Named pretrained stylizers shipped in the package (or downloadable), and resolving a name
or a path to a stylizer file."""
from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

from iecast.errors import IecastError
from iecast.weights.cache import cache_dir, check_sha256, download
from iecast.weights.encoders import DEFAULT_ENCODER


@dataclass(frozen=True)
class PretrainedWeights:
    """A named stylizer shipped in the package (or downloadable)."""

    name: str
    file_name: str
    sha256: str | None
    encoder: str
    description: str
    licence: str
    url: str | None = None

    def local_path(self) -> Path | None:
        """The checksum-verified file in the package or the cache, or None; never downloads."""
        packaged = Path(str(importlib.resources.files("iecast.assets").joinpath(self.file_name)))
        for candidate in (packaged, cache_dir() / self.file_name):
            if candidate.is_file():
                check_sha256(candidate, self.sha256)
                return candidate
        return None

    def path(self) -> Path:
        """The local file, downloading it into the cache first if the entry has a URL."""
        local = self.local_path()
        if local is not None:
            return local
        if self.url:
            return download(self.url, cache_dir() / self.file_name, self.sha256)
        raise IecastError(f"pretrained weights {self.name!r} are not installed: expected {self.file_name} in the package or in {cache_dir()}")


PRETRAINED: dict[str, PretrainedWeights] = {
    "default": PretrainedWeights(
        name="default",
        file_name="default.safetensors",
        sha256="2e8dd54db640a10086157b488981d7c03a60e4d6e27a89608c32ac734e0ac2ee",
        encoder=DEFAULT_ENCODER,
        description="IEContraAST, cpu-small preset (128 px crops, h = 2) on the project's shared data; early and "
                    "undertrained: the photo's layout in the painting's palette, soft detail. Iteration count in the "
                    "file's metadata; details in iecast/assets/MODEL_CARD.md",
        licence="research use only (trained on third-party images, see MODEL_CARD.md)",
    ),
}


def resolve_stylizer_path(name_or_path: str | Path) -> Path:
    """A registered pretrained name, or a path to an iecast stylizer file."""
    if str(name_or_path) in PRETRAINED:
        return PRETRAINED[str(name_or_path)].path()
    path = Path(name_or_path)
    if path.exists():
        return path
    known = ", ".join(PRETRAINED) or "none shipped yet"
    raise IecastError(f"{name_or_path}: neither a file nor a pretrained name (known: {known})")
