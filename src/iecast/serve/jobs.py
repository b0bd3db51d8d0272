"""The job queue: one worker thread stylizes one job at a time; progress from the share of the network's
convolution work done (forward hooks); finished results kept for a while."""
from __future__ import annotations

import copy
import io
import queue
import re
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image

from iecast.errors import IecastError, is_out_of_memory
from iecast.images import fit_within, load_image
from iecast.inference.color import PRESERVE_COLOR_MODES
from iecast.inference.options import StylizeOptions
from iecast.inference.resize import PAD_MULTIPLE
from iecast.inference.stylizer import DEFAULT_STYLE_SIZE
from iecast.serve.config import ServeConfig, log
from iecast.serve.uploads import MIN_UPLOAD_SIDE, UploadRejected

INTERNAL_ERROR = "stylization failed because of an internal error (the server's log has the details)"
OUT_OF_MEMORY = "stylization ran out of memory: choose a smaller output size or a smaller style image"


def job_options(config: ServeConfig, alpha: float, preserve_color: str) -> StylizeOptions:
    """A job's `StylizeOptions` from its form fields and the server's config, checked once on submission;
    a rule it breaks is a 400 `UploadRejected` with the options' own message."""
    options = StylizeOptions(alpha=alpha, preserve_color=preserve_color or None, style_size=config.style_size,
                             max_pixels=config.max_pixels)  # the server's own limit, which --max-megapixels may raise
    try:
        return options.checked(style_count=1)
    except IecastError as exc:
        raise UploadRejected(400, str(exc)) from None


def expected_style_hw(style: Image.Image, style_size: int | str | None = "auto", auto_size: int | None = None) -> tuple[int, int]:
    """The size the stylizer will encode a PIL style at (`style_size` pixels on the shorter side;
    "auto": `auto_size`, else the library's `DEFAULT_STYLE_SIZE` where it has one; None: as given).
    Only for the progress estimate."""
    shorter = (auto_size or DEFAULT_STYLE_SIZE) if style_size == "auto" else style_size
    if not shorter:
        return style.height, style.width
    scale = shorter / min(style.size)
    return max(1, round(style.height * scale)), max(1, round(style.width * scale))


# ----------------------------------------------------------------------------- jobs

@dataclass
class Job:
    """One stylization request and its state."""

    id: str
    content: bytes
    content_name: str
    style: bytes | Path
    options: StylizeOptions  # checked by `job_options`, passed to `stylize` as is
    size: int
    status: str = "queued"  # queued -> running -> done | failed
    stage: str = "waiting in the queue"
    progress: float = 0.0
    error: str | None = None
    result: bytes | None = None
    result_size: tuple[int, int] | None = None
    created: float = field(default_factory=time.monotonic)
    finished: float | None = None

    def public(self, position: int | None) -> dict[str, Any]:
        """The job as the page sees it."""
        info: dict[str, Any] = {"id": self.id, "status": self.status, "stage": self.stage,
                                "progress": round(self.progress, 4)}
        if position is not None:
            info["position"] = position
        if self.error:
            info["error"] = self.error
        if self.status == "done":
            info["result_url"] = f"/api/jobs/{self.id}/result"
            info["download_name"] = self.download_name()
            info["width"], info["height"] = self.result_size
        return info

    def download_name(self) -> str:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(self.content_name).stem)[:60] or "image"
        return f"{stem}-stylized.png"


class ConvProgress:
    """Share of a network's convolution work done so far, counted by forward hooks.

    The total for a given input size comes from a dry run of a copy of the network on the
    `meta` device (shapes only, no arithmetic), so the bar is proportional to real work.
    """

    def __init__(self, network: torch.nn.Module) -> None:
        self.network = network
        self.meta_network = copy.deepcopy(network).to("meta")
        self.done = 0.0
        self.total = 0.0
        self.callback: Callable[[float], None] | None = None

    @staticmethod
    def _conv_work(module: torch.nn.Conv2d, output: torch.Tensor) -> float:
        kh, kw = module.kernel_size
        return float(output.numel()) * module.in_channels // module.groups * kh * kw

    def _convs(self, network: torch.nn.Module) -> list[torch.nn.Conv2d]:
        return [m for m in network.modules() if isinstance(m, torch.nn.Conv2d)]

    def estimate(self, content_hw: tuple[int, int], style_hw: tuple[int, int], alpha: float) -> float | None:
        """Convolution work (multiply-adds) for one stylization at these sizes (None if the dry run fails)."""
        total = [0.0]
        hooks = [m.register_forward_hook(lambda mod, _i, out: total.__setitem__(0, total[0] + self._conv_work(mod, out)))
                 for m in self._convs(self.meta_network)]
        pad = lambda n: n + (-n) % PAD_MULTIPLE  # noqa: E731
        try:
            with torch.no_grad():
                self.meta_network(torch.empty(1, 3, pad(content_hw[0]), pad(content_hw[1]), device="meta"),
                                  torch.empty(1, 3, *style_hw, device="meta"), alpha)
        except Exception:  # a network the meta device cannot run: progress falls back to stages
            return None
        finally:
            for hook in hooks:
                hook.remove()
        return total[0]

    def track(self, total: float, callback: Callable[[float], None]) -> "ConvProgress":
        self.done, self.total, self.callback = 0.0, max(total, 1.0), callback
        return self

    def __enter__(self) -> "ConvProgress":
        def count(module: torch.nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            self.done += self._conv_work(module, output)
            if self.callback is not None:
                self.callback(min(self.done / self.total, 1.0))

        self._hooks = [m.register_forward_hook(count) for m in self._convs(self.network)]
        return self

    def __exit__(self, *exc: Any) -> None:
        for hook in self._hooks:
            hook.remove()


class StylizeService:
    """A bounded job queue in front of one stylizer, served by one worker thread."""

    def __init__(self, stylizer: Any, config: ServeConfig) -> None:
        self.stylizer = stylizer
        self.config = config
        self.pending: queue.Queue[Job | None] = queue.Queue(maxsize=config.queue_size)
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.waiting: list[str] = []
        self.lock = threading.Lock()
        self.worker: threading.Thread | None = None
        self.color_modes = tuple(PRESERVE_COLOR_MODES)  # what the page offers
        network = getattr(stylizer, "compute_network", getattr(stylizer, "network", None))  # what calls run
        self.progress = ConvProgress(network) if isinstance(network, torch.nn.Module) else None

    # lifecycle
    def start(self) -> None:
        if self.worker is None:
            self.worker = threading.Thread(target=self._work, name="iecast-stylize", daemon=True)
            self.worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self.worker is not None:
            self.pending.put(None)
            self.worker.join(timeout)
            self.worker = None

    # requests
    def submit(self, job: Job) -> int:
        """Queue a job; its position (1 = next). `UploadRejected(503)` when the queue is full."""
        with self.lock:
            self._prune()
            try:
                self.pending.put_nowait(job)
            except queue.Full:
                raise UploadRejected(503, f"the server is busy ({self.config.queue_size} jobs waiting); "
                                          f"try again in a moment") from None
            self.jobs[job.id] = job
            self.waiting.append(job.id)
            return len(self.waiting)

    def status(self, job_id: str) -> dict[str, Any] | None:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                return None
            position = self.waiting.index(job_id) + 1 if job_id in self.waiting else None
            return job.public(position)

    def result(self, job_id: str) -> Job | None:
        with self.lock:
            job = self.jobs.get(job_id)
            return job if job is not None and job.status == "done" else None

    def _prune(self) -> None:
        """Forget finished jobs past their time or beyond `keep_results` (oldest first)."""
        now = time.monotonic()
        finished = [j for j in self.jobs.values() if j.finished is not None]
        expired = [j for j in finished if now - j.finished > self.config.result_ttl_s]
        overflow = finished[: max(0, len(finished) - self.config.keep_results)]
        for job in {j.id: j for j in expired + overflow}.values():
            del self.jobs[job.id]

    # worker
    def _work(self) -> None:
        if self.progress is not None:
            self.progress.estimate((64, 64), (64, 64), 0.5)  # pay the meta-device warm-up before the first job
        while True:
            job = self.pending.get()
            if job is None:
                return
            with self.lock:
                self.waiting.remove(job.id)
                job.status, job.stage = "running", "reading the images"
            try:
                self._run(job)
                job.status, job.stage, job.progress = "done", "done", 1.0
            except (IecastError, UploadRejected) as exc:  # the input's fault, said in one line for the user
                job.status, job.stage, job.error = "failed", "failed", (str(exc).splitlines() or ["failed"])[0][:300]
            except Exception as exc:  # a bug or out of memory: a generic line for the client, details in the log
                job.status, job.stage = "failed", "failed"
                job.error = OUT_OF_MEMORY if is_out_of_memory(exc) else INTERNAL_ERROR
                log.error("job %s failed: %s", job.id, job.error, exc_info=exc)
            finally:
                job.content, job.style = b"", b""
                with self.lock:
                    job.finished = time.monotonic()
                    self._prune()

    def _decode(self, data: bytes | Path, what: str, scratch: Path) -> Image.Image:
        """Fully decode an upload with `load_image` (pixel limit, modes, EXIF) and name it `what`."""
        if isinstance(data, Path):
            return load_image(data, max_pixels=self.config.max_pixels)
        path = scratch / what
        path.write_bytes(data)
        try:
            return load_image(path, max_pixels=self.config.max_pixels)
        except IecastError as exc:
            raise IecastError(str(exc).replace(str(path), what)) from None

    def _run(self, job: Job) -> None:
        with tempfile.TemporaryDirectory(prefix="iecast-serve-") as scratch:
            content = fit_within(self._decode(job.content, "content image", Path(scratch)), job.size, MIN_UPLOAD_SIDE)
            style = self._decode(job.style, "style image", Path(scratch))
        job.stage = "stylizing"
        total = None
        if self.progress is not None:
            style_hw = expected_style_hw(style, job.options.style_size, getattr(self.stylizer, "training_style_size", None))
            total = self.progress.estimate((content.height, content.width), style_hw, job.options.alpha)
        if total is not None:
            with self.progress.track(total, lambda share: setattr(job, "progress", 0.97 * share)):
                result = self.stylizer.stylize(content, style, options=job.options)
        else:
            result = self.stylizer.stylize(content, style, options=job.options)
        job.stage, job.progress = "encoding the result", max(job.progress, 0.97)
        buffer = io.BytesIO()
        result.save(buffer, format="PNG")
        job.result, job.result_size = buffer.getvalue(), result.size
