"""The settings of one evaluation run."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from iecast.evaluation.gatys import GatysConfig


@dataclass
class EvalConfig:
    """Everything one evaluation run needs; `iecast eval` fills it from its flags."""

    contents: Path
    styles: Path
    out: Path
    methods: list[str]
    size: int | None = 256
    limit: int | None = None
    encoder: str | None = None  # None: an encoder the compared models did not train with (iecast.evaluation.judge)
    perceptual: str = "lpips"
    image_format: str = "png"
    gatys: GatysConfig = field(default_factory=GatysConfig)
    videos: Sequence[Path] = ()
    video_frames: int = 20
    video_style: Path | None = None
    art_fid: bool = True
    overwrite: bool = False
    device: str = "cpu"
    progress: bool = True
    jpeg_quality: int = 90
    alphas: Sequence[float] | None = None  # strength sweep (iecast.evaluation.tradeoff); None: every method at full strength
