"""`iecast serve`: a local web page to stylize photos (FastAPI + one plain HTML page).

Memory stays bounded whatever the clients do:
- a request body over `max_upload_bytes` gets 413 before it is parsed (read and dropped, never kept);
- an upload is checked from its header only (format, width x height): not an image -> 400,
  over `max_pixels` -> 413, so a decompression bomb is never decoded;
- one worker thread stylizes one job at a time; at most `queue_size` jobs wait, each holding only
  its compressed uploads; a job over that gets 503 with a message to retry;
- finished results (PNG bytes) are kept for `result_ttl_s`, at most `keep_results` of them.

Connections cannot starve the server either (`make_server`): a request's headers must arrive within
`header_timeout_s` and its body within `body_timeout_s`, or the connection is closed; past
`max_connections` the oldest connection still waiting for its headers is closed to make room; at
most `max_requests` requests are handled at once (more get 503), `/api/health` always answers.
Requests that change state (POST) from another web page (a foreign `Origin`) get 403; every error,
malformed uploads included, answers `{"error": "<one line>"}`.

Clients poll `GET /api/jobs/{id}` for the queue position and progress (the share of the
network's convolution work done, from forward hooks), then fetch `GET /api/jobs/{id}/result`.
"""
from __future__ import annotations

import copy
import errno
import importlib.resources
import inspect
import io
import ipaddress
import json
import logging
import os
import queue
import re
import socket
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image, UnidentifiedImageError

from iecast.errors import IecastError, is_out_of_memory
from iecast.images import IMAGE_EXTENSIONS, fit_within, load_image

try:  # the `serve` extra; at module level so FastAPI can resolve the endpoints' annotations
    from fastapi import FastAPI, File, Form, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError:  # pragma: no cover - reported by create_app
    FastAPI = None

SIZES = (256, 384, 512, 768, 1024, 1536, 2048)
STATIC_DIR = Path(__file__).resolve().parent / "static"
MIN_IMAGE_SIDE = 17
STYLE_LIST = "styles.txt"  # in a samples folder: the files offered as styles, in order (the first is pre-selected)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
INTERNAL_ERROR = "stylization failed because of an internal error (the server's log has the details)"
OUT_OF_MEMORY = "stylization ran out of memory: choose a smaller output size or a smaller style image"
log = logging.getLogger("iecast.serve")


@dataclass
class ServeConfig:
    """Limits and options of the web app."""

    max_upload_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_side: int = 1024
    default_size: int = 512
    queue_size: int = 4
    keep_results: int = 16
    result_ttl_s: float = 900.0
    samples_dir: Path | None = None
    style_size: int | str | None = "auto"  # passed to `stylize(style_size=...)`: "auto" = the library's default scale
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


class UploadRejected(Exception):
    """A request the server refuses: an HTTP status and a one-line message for the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ----------------------------------------------------------------------------- request body limit

class BodySizeLimit:
    """ASGI wrapper: a request whose body exceeds `max_bytes` gets 413 and its body is discarded.

    A declared Content-Length is checked before anything is read; a chunked body is counted as
    it arrives. The rejected body is read and dropped (up to `drain_bytes`) so the client gets the
    413 instead of a connection reset.
    """

    def __init__(self, app: Callable, max_bytes: int, drain_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_bytes = drain_bytes if drain_bytes is not None else max(4 * max_bytes, 64 * 1024 * 1024)

    def _message(self) -> str:
        return f"upload too large: the limit is {self.max_bytes / 1048576:.1f} MB per request"

    async def _reject(self, receive: Callable, send: Callable, already: int, more_body: bool) -> None:
        drained = already
        while more_body and drained <= self.drain_bytes:
            message = await receive()
            if message["type"] != "http.request":
                break
            drained += len(message.get("body", b""))
            more_body = message.get("more_body", False)
        body = ('{"error": "%s"}' % self._message()).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if more_body:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(receive, send, 0, True)
            return
        received = 0
        rejected = False

        async def counted_receive() -> dict:
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    rejected = True
                    await self._reject(receive, send, received, message.get("more_body", False))
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            if not rejected:
                await send(message)

        await self.app(scope, counted_receive, guarded_send)


async def send_json_error(send: Callable, status: int, message: str) -> None:
    """Answer `{"error": message}` with `status` from ASGI middleware."""
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def is_local_name(host: str, allowed: tuple[str, ...] = ()) -> bool:
    """Whether a Host header's name (port stripped) is one this server may be reached under by the
    page: an IP address, localhost, this machine's name, or one in `allowed` (case-insensitive)."""
    name = host[1:].split("]")[0] if host.startswith("[") else host.split(":")[0]
    name = name.rstrip(".").lower()
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    machine = socket.gethostname().lower()
    names = {"localhost", machine, machine.split(".")[0] + ".local", *(a.lower() for a in allowed)}
    return name in names or name.endswith(".localhost")


class RequestGuard:
    """ASGI wrapper in front of the app.

    - A request that changes state (not GET/HEAD/OPTIONS) carrying an `Origin` header must come from
      the server's own page: the Origin equals `scheme://Host`, and Host is a local name (an IP
      address, localhost, this machine, `allowed_hosts`) so a DNS-rebound domain is refused too.
      Otherwise 403: another site open in the user's browser cannot submit jobs. Clients that send
      no Origin (curl, scripts) are not browsers acting for a web page and are let through.
    - At most `max_requests` requests are handled at once; more get 503, except `/api/health`.
    """

    def __init__(self, app: Callable, max_requests: int, allowed_hosts: tuple[str, ...] = (),
                 always: tuple[str, ...] = ("/api/health",)) -> None:
        self.app = app
        self.max_requests = max_requests
        self.allowed_hosts = allowed_hosts
        self.always = always
        self.active = 0

    def refusal(self, scope: dict) -> str | None:
        """Why a request from a browser page is refused (None: allowed)."""
        if scope["method"] in SAFE_METHODS:
            return None
        headers = {k: v for k, v in scope.get("headers") or []}
        origin = headers.get(b"origin")
        if origin is None:
            return None
        origin_text = origin.decode("latin-1").strip()
        host = headers.get(b"host", b"").decode("latin-1").strip()
        own = f"{scope.get('scheme', 'http')}://{host}"
        if not host or origin_text.lower() != own.lower() or not is_local_name(host, self.allowed_hosts):
            shown = origin_text[:80] if origin_text.isprintable() else "unprintable"
            return (f"cross-origin request refused (origin {shown}): jobs are accepted only from this server's "
                    f"own page or from clients that send no Origin header")
        return None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        reason = self.refusal(scope)
        if reason is not None:
            await send_json_error(send, 403, reason)
            return
        if scope["path"] in self.always:
            await self.app(scope, receive, send)
            return
        if self.active >= self.max_requests:
            await send_json_error(send, 503, f"the server is handling {self.max_requests} requests already; "
                                             f"try again in a moment")
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


# ----------------------------------------------------------------------------- uploads and samples

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
    if min(width, height) < MIN_IMAGE_SIDE:
        raise UploadRejected(400, f"{what}: {width}x{height} is too small; both sides must be at least {MIN_IMAGE_SIDE} pixels")
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


def color_modes(stylizer: Any) -> tuple[str, ...]:
    """The colour-preservation modes the stylizer's `stylize(preserve_color=...)` accepts (none if it has no such option)."""
    if "preserve_color" not in inspect.signature(stylizer.stylize).parameters:
        return ()
    try:
        from iecast.color import PRESERVE_COLOR_MODES
    except ImportError:
        return ()
    return tuple(PRESERVE_COLOR_MODES)


def expected_style_hw(style: Image.Image, style_size: int | str | None = "auto", auto_size: int | None = None) -> tuple[int, int]:
    """The size the stylizer will encode a PIL style at (`style_size` pixels on the shorter side;
    "auto": `auto_size`, else the library's `DEFAULT_STYLE_SIZE` where it has one; None: as given).
    Only for the progress estimate."""
    import iecast.stylizer

    shorter = (auto_size or getattr(iecast.stylizer, "DEFAULT_STYLE_SIZE", None)) if style_size == "auto" else style_size
    if not shorter:
        return style.height, style.width
    scale = shorter / min(style.size)
    return max(1, round(style.height * scale)), max(1, round(style.width * scale))


def display_name(stem: str) -> str:
    return re.sub(r"[_\-]+", " ", stem).strip().capitalize()


# ----------------------------------------------------------------------------- jobs

@dataclass
class Job:
    """One stylization request and its state."""

    id: str
    content: bytes
    content_name: str
    style: bytes | Path
    alpha: float
    preserve_color: str
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
        from iecast.stylizer import PAD_MULTIPLE

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
        self.color_modes = color_modes(stylizer)
        self.accepts_style_size = "style_size" in inspect.signature(stylizer.stylize).parameters
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
            content = fit_within(self._decode(job.content, "content image", Path(scratch)), job.size, MIN_IMAGE_SIDE)
            style = self._decode(job.style, "style image", Path(scratch))
        kwargs: dict[str, Any] = {"alpha": job.alpha}
        if self.config.style_size != "auto" and self.accepts_style_size:
            kwargs["style_size"] = self.config.style_size
        if job.preserve_color:
            kwargs["preserve_color"] = job.preserve_color
        job.stage = "stylizing"
        total = None
        if self.progress is not None:
            total = self.progress.estimate((content.height, content.width),
                                           expected_style_hw(style, kwargs.get("style_size", "auto"),
                                                             getattr(self.stylizer, "training_style_size", None)), job.alpha)
        if total is not None:
            with self.progress.track(total, lambda share: setattr(job, "progress", 0.97 * share)):
                result = self.stylizer.stylize(content, style, **kwargs)
        else:
            result = self.stylizer.stylize(content, style, **kwargs)
        job.stage, job.progress = "encoding the result", max(job.progress, 0.97)
        buffer = io.BytesIO()
        result.save(buffer, format="PNG")
        job.result, job.result_size = buffer.getvalue(), result.size


# ----------------------------------------------------------------------------- the app

def create_app(stylizer: Any, config: ServeConfig | None = None) -> "FastAPI":
    """The FastAPI app; `app.state.service` is its job queue. `stylizer` needs
    `stylize(content: PIL, style: PIL, alpha=...) -> PIL` (`preserve_color=` and `style_size=` are used when it has them)."""
    from contextlib import asynccontextmanager

    if FastAPI is None:
        raise IecastError("the web app needs the serve extra: pip install 'iecast[serve]'")
    config = config or ServeConfig()
    samples_dir = config.samples_dir if config.samples_dir is not None else default_samples_dir()
    service = StylizeService(stylizer, config)
    thumbnails: dict[str, bytes] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        service.start()
        yield
        service.stop()

    app = FastAPI(title="iecast", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service
    app.state.config = config

    @app.exception_handler(UploadRejected)
    async def _rejected(_request: Request, exc: UploadRejected) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": validation_message(exc.errors())}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """FastAPI's own errors (unparsable form: 400, unknown path: 404, wrong method: 405) as `{"error"}`."""
        detail = str(exc.detail).splitlines()[0].rstrip(".") if exc.detail else "error"
        if exc.status_code == 400:
            message = f"malformed upload ({detail}): send a multipart/form-data form with the photo in the field 'content'"
        elif exc.status_code == 404:
            message = f"not found: {request.url.path[:100]}"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path[:100]}"
        else:
            message = detail
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("request failed", exc_info=exc)
        return JSONResponse({"error": "internal server error (the server's log has the details)"}, status_code=500)

    def styles() -> dict[str, Path]:
        return list_sample_styles(samples_dir)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        return {"ok": True, "queued": len(service.waiting), "queue_size": config.queue_size}

    @app.get("/api/config")
    async def page_config() -> dict[str, Any]:
        return {
            "sizes": config.sizes(), "default_size": min(config.default_size, config.max_side),
            "max_upload_bytes": config.max_upload_bytes, "max_pixels": config.max_pixels,
            "color_modes": list(service.color_modes),
            "styles": [{"name": name, "label": display_name(name), "url": f"/api/styles/{name}"} for name in styles()],
        }

    @app.get("/api/styles/{name}")
    async def style_thumbnail(name: str) -> Response:
        path = styles().get(name)
        if path is None:
            return JSONResponse({"error": f"no sample style named {name!r}"}, status_code=404)
        if name not in thumbnails:
            image = fit_within(load_image(path, max_pixels=config.max_pixels), 192, MIN_IMAGE_SIDE)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=85)
            thumbnails[name] = buffer.getvalue()
        return Response(thumbnails[name], media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    @app.post("/api/jobs", status_code=202)
    async def create_job(
        content: UploadFile = File(..., description="the photo"),
        style: UploadFile | None = File(None, description="an uploaded style image"),
        style_name: str = Form(""),
        alpha: float = Form(1.0),
        preserve_color: str = Form(""),
        size: int = Form(0),
    ) -> JSONResponse:
        if not 0.0 <= alpha <= 1.0:
            raise UploadRejected(400, f"alpha must be between 0 and 1 (got {alpha})")
        if preserve_color in ("", "none"):
            preserve_color = ""
        elif preserve_color not in service.color_modes:
            raise UploadRejected(400, f"unknown colour mode {preserve_color!r}; this server offers: "
                                      f"{', '.join(service.color_modes) or 'none'}")
        size = size or min(config.default_size, config.max_side)
        if not MIN_IMAGE_SIDE * 4 <= size <= config.max_side:
            raise UploadRejected(400, f"size must be between {MIN_IMAGE_SIDE * 4} and {config.max_side} pixels (got {size})")
        content_bytes = await content.read()
        inspect_upload(content_bytes, "content image", config.max_pixels)
        style_source: bytes | Path
        if style is not None and style.filename:
            style_source = await style.read()
            inspect_upload(style_source, "style image", config.max_pixels)
        elif style_name:
            if style_name not in styles():
                raise UploadRejected(400, f"no sample style named {style_name!r}")
            style_source = styles()[style_name]
        else:
            raise UploadRejected(400, "choose a sample style or upload a style image")
        job = Job(id=uuid.uuid4().hex, content=content_bytes, content_name=content.filename or "image",
                  style=style_source, alpha=alpha, preserve_color=preserve_color, size=size)
        position = service.submit(job)
        return JSONResponse({"id": job.id, "status_url": f"/api/jobs/{job.id}", "position": position},
                            status_code=202)

    @app.get("/api/jobs/{job_id}")
    async def job_status(job_id: str) -> JSONResponse:
        info = service.status(job_id)
        if info is None:
            return JSONResponse({"error": "no such job (finished results are kept for a limited time)"}, status_code=404)
        return JSONResponse(info)

    @app.get("/api/jobs/{job_id}/result")
    async def job_result(job_id: str) -> Response:
        job = service.result(job_id)
        if job is None or job.result is None:
            return JSONResponse({"error": "no finished result for this job"}, status_code=404)
        return Response(job.result, media_type="image/png",
                        headers={"Content-Disposition": f'inline; filename="{job.download_name()}"'})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(BodySizeLimit, max_bytes=config.max_upload_bytes)
    app.add_middleware(RequestGuard, max_requests=config.max_requests, allowed_hosts=config.allowed_hosts)
    return app


def validation_message(errors: list[dict[str, Any]]) -> str:
    """One line for FastAPI's list of validation errors: the first field and what is wrong with it."""
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
    kind, message = first.get("type", ""), first.get("msg", "invalid value")
    if kind == "missing":
        message = "missing; send a multipart/form-data form with the photo in the field 'content'" \
            if where == "content" else "missing"
    elif "UploadFile" in message:
        message = "expected an uploaded file, got a text field"
    return f"{where}: {message.splitlines()[0][:200] if message else 'invalid value'}"


# ----------------------------------------------------------------------------- entry point

def load_serving_stylizer(weights: str, device: str = "auto") -> Any:
    """The stylizer to serve, or a one-line error that says how to get weights."""
    from iecast import weights as registry
    from iecast.stylizer import Stylizer

    if weights not in registry.PRETRAINED and not Path(weights).exists():
        known = ", ".join(registry.PRETRAINED) or "none installed"
        raise IecastError(f"no weights {weights!r} (pretrained names: {known}); pass --weights PATH to an iecast "
                          f".safetensors, e.g. one made by `iecast train` then `iecast export CHECKPOINT -o model.safetensors`")
    return Stylizer.from_pretrained(weights, device=device)


def guarded_protocol(config: ServeConfig) -> type:
    """uvicorn's h11 protocol with the deadlines and the connection cap that uvicorn lacks.

    uvicorn times out only idle kept-alive connections: a connection that never finishes its request
    headers (slowloris) or its body is kept forever, and its `limit_concurrency` counts such
    connections, so 64 of them make every request 503. Here each connection is in one phase:
    "headers" (waiting for a request: from connect or the previous answer; `header_timeout_s`),
    "body" (headers read, body arriving; `body_timeout_s`) or none (the app is answering). A phase
    that outlives its deadline closes the connection (408 when nothing was answered). When more than
    `max_connections` are open, the oldest connection waiting for headers is closed, else the oldest
    one sending a body, else the new one (503).
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    timeouts = {"headers": config.header_timeout_s, "body": config.body_timeout_s}
    timeout_answer = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                      b"content-length: %d\r\n\r\n%s")
    busy_answer = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
                   b"content-length: %d\r\n\r\n%s")

    def answer(template: bytes, message: str) -> bytes:
        body = json.dumps({"error": message}).encode()
        return template % (len(body), body)

    # this server's connections in each phase, oldest first (dicts keep insertion order): eviction is O(1)
    in_phase: dict[str, dict[Any, None]] = {"headers": {}, "body": {}}

    class GuardedH11Protocol(H11Protocol):
        phase: str | None = None
        deadline: Any = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.enter("headers")
            if len(self.connections) > config.max_connections:
                self.make_room()

        def connection_lost(self, exc: Exception | None) -> None:
            self.enter(None)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self.follow()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self.follow()

        def follow(self) -> None:
            """Move to the phase h11's view of the client says we are in."""
            state = self.conn.their_state
            phase = "headers" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None
            if self.transport.is_closing():
                phase = None
            if phase != self.phase:
                self.enter(phase)

        def enter(self, phase: str | None) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None
            if self.phase is not None:
                in_phase[self.phase].pop(self, None)
            self.phase = phase
            if phase is not None:
                in_phase[phase][self] = None
                self.deadline = self.loop.call_later(timeouts[phase], self.expire)

        def expire(self) -> None:
            self.deadline = None
            phase = self.phase
            self.enter(None)
            if self.transport.is_closing():
                return
            answered = self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE)
            started = phase == "body" or bool(self.conn.trailing_data[0])
            if started and not answered:
                what = "headers" if phase == "headers" else "body"
                self.transport.write(answer(timeout_answer, f"the request's {what} did not arrive within "
                                                            f"{timeouts[phase]:g} s"))
            self.transport.close()

        def make_room(self) -> None:
            """Close the oldest connection waiting for headers (else sending a body), else this one."""
            for phase in ("headers", "body"):
                oldest = next((c for c in in_phase[phase] if c is not self), None)
                if oldest is not None:
                    oldest.enter(None)
                    oldest.transport.close()
                    return
            self.enter(None)
            self.transport.write(answer(busy_answer, f"the server has {config.max_connections} connections open; "
                                                     f"try again in a moment"))
            self.transport.close()

    return GuardedH11Protocol


def make_server(app: Any, config: ServeConfig | None = None, log_level: str | None = None) -> Any:
    """The uvicorn server for `app` with the connection guards of `guarded_protocol`; run it with
    `server.run(sockets=[bind_socket(host, port)])`. `app.state.connections()` then gives its open connections."""
    import uvicorn

    config = config or getattr(app.state, "config", None) or ServeConfig()
    uvicorn_config = uvicorn.Config(
        app, http=guarded_protocol(config), ws="none", lifespan="on",
        limit_concurrency=None,  # counts half-open connections too; the guards above replace it
        timeout_keep_alive=config.keep_alive_s, h11_max_incomplete_event_size=16 * 1024,
        log_level=log_level or os.environ.get("IECAST_LOG_LEVEL", "warning"))
    server = uvicorn.Server(uvicorn_config)
    app.state.connections = lambda: server.server_state.connections
    return server


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (port 0: a free one), or a one-line `IecastError`."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise IecastError(f"cannot listen on {host}: not a known address ({exc})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # a port bound by a socket that is not listening yet is caught here too
    except OSError as exc:
        sock.close()
        reason = "the port is in use; choose another with --port" if exc.errno == errno.EADDRINUSE \
            else exc.strerror or str(exc)
        raise IecastError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)
    return sock


def serve(weights: str = "default", host: str = "127.0.0.1", port: int = 8000, config: ServeConfig | None = None,
          device: str = "auto") -> None:
    """Check the address is free, load the weights, then serve the page until interrupted."""
    config = config or ServeConfig()
    sock = bind_socket(host, port)
    try:
        stylizer = load_serving_stylizer(weights, device)
        app = create_app(stylizer, config)
        server = make_server(app, config)
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else \
            f"[{host}]" if ":" in host else host
        print(f"iecast serve: open http://{shown}:{sock.getsockname()[1]}/  (Ctrl+C to stop)", flush=True)
        server.run(sockets=[sock])
    finally:
        sock.close()
