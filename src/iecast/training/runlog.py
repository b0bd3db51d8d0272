"""The training run's log: JSONL lines (always), TensorBoard scalars and images (when available),
and style | content | output image grids as PNG."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from iecast.images import save_image, tensor_to_pil


class RunLog:
    """JSONL log (always), TensorBoard scalars and images (when available), image grids as PNG."""

    def __init__(self, out_dir: Path, enabled: bool, tensorboard: bool) -> None:
        self.enabled = enabled
        self.out_dir = out_dir
        self.writer = None
        if not enabled:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = open(out_dir / "log.jsonl", "a", buffering=1)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(out_dir / "tensorboard"))
            except Exception as exc:  # tensorboard is optional
                warnings.warn(f"TensorBoard logging off ({exc}); the JSONL log is still written", stacklevel=2)

    def scalars(self, iteration: int, values: dict) -> None:
        if not self.enabled:
            return
        self.jsonl.write(json.dumps({"iteration": iteration, **values}) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, iteration)

    def image_grid(self, iteration: int, styles: torch.Tensor, contents: torch.Tensor, outputs: torch.Tensor) -> Path | None:
        """Rows of style | content | output, saved as PNG (and to TensorBoard)."""
        if not self.enabled:
            return None
        rows = [torch.cat([s, c, o], dim=2) for s, c, o in zip(styles, contents, outputs.float().clamp(0, 1))]
        grid = torch.cat(rows, dim=1)
        path = save_image(tensor_to_pil(grid), self.out_dir / "images" / f"iter_{iteration:08d}.png")
        if self.writer is not None:
            self.writer.add_image("style|content|output", grid, iteration)
        return path

    def close(self) -> None:
        if self.enabled:
            self.jsonl.close()
            if self.writer is not None:
                self.writer.close()
