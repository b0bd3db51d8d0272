"""The web app's limits and options (`ServeConfig`), its output sizes, and the `iecast.serve` logger."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from iecast.images import MAX_PIXELS


SIZES = (256, 384, 512, 768, 1024, 1536, 2048)
log = logging.getLogger("iecast.serve")


@dataclass
class ServeConfig:
    """Limits and options of the web app."""

    max_upload_bytes: int = 25 * 1024 * 1024
    max_pixels: int = MAX_PIXELS  # uploads over it get 413; the library's limit, so a run fits in 4 GB
    max_side: int = 1024
    default_size: int = 512
    queue_size: int = 4
    keep_results: int = 16
    result_ttl_s: float = 900.0
    samples_dir: Path | None = None
    style_size: int | str | None = "auto"  # every job's `StylizeOptions.style_size`: "auto" = the model's training scale
    header_timeout_s: float = 10.0  # a request's headers must arrive within this (from connect / the previous answer)
    body_timeout_s: float = 120.0  # and its body within this after its headers
    keep_alive_s: int = 5  # an idle kept-alive connection is closed after this
    max_connections: int = 256  # over it, the oldest connection still waiting for headers is closed
    max_requests: int = 64  # requests handled at once; more get 503 (`/api/health` is always answered)
    allowed_hosts: tuple[str, ...] = ()  # host names (besides IP addresses, localhost and this machine's name)
    # under which the page may POST with an Origin header; guards against DNS rebinding

    def sizes(self) -> list[int]:
        """The output sizes (longest side) the page offers."""
        return [s for s in SIZES if s <= self.max_side] or [self.max_side]
