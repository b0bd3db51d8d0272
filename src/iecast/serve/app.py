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

import io
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Callable

from iecast.errors import IecastError
from iecast.images import fit_within, load_image
from iecast.inference.stylizer import Stylizer
from iecast.serve.config import ServeConfig, log
from iecast.serve.jobs import Job, StylizeService, job_options
from iecast.serve.limits import BodySizeLimit, RequestGuard, bind_socket, make_server
from iecast.serve.uploads import (MIN_UPLOAD_SIDE, UploadRejected, default_samples_dir, display_name, inspect_upload,
                                  list_sample_styles)
from iecast.weights import registry

try:  # the `serve` extra; at module level so FastAPI can resolve the endpoints' annotations
    from fastapi import FastAPI, File, Form, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError:  # pragma: no cover - reported by create_app
    FastAPI = None

STATIC_DIR = Path(__file__).resolve().parent / "static"


# ----------------------------------------------------------------------------- the app

def create_app(stylizer: Any, config: ServeConfig | None = None) -> "FastAPI":
    """The FastAPI app; `app.state.service` is its job queue. `stylizer` needs
    `stylize(content: PIL, style: PIL, options=StylizeOptions) -> PIL`, as `Stylizer` has."""
    if FastAPI is None:
        raise IecastError("the web app needs the serve extra: pip install 'iecast[serve]'")
    config = config or ServeConfig()
    samples_dir = config.samples_dir if config.samples_dir is not None else default_samples_dir()
    service = StylizeService(stylizer, config)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        service.start()
        yield
        service.stop()

    def styles() -> dict[str, Path]:
        return list_sample_styles(samples_dir)

    app = FastAPI(title="iecast", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service
    app.state.config = config
    _add_error_handlers(app)
    _add_page_routes(app, service, config, styles)
    _add_job_routes(app, service, config, styles)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(BodySizeLimit, max_bytes=config.max_upload_bytes)
    app.add_middleware(RequestGuard, max_requests=config.max_requests, allowed_hosts=config.allowed_hosts)
    return app


def _add_error_handlers(app: "FastAPI") -> None:
    """Every error answers `{"error": "<one line>"}`: rejected uploads, invalid forms, FastAPI's own, unexpected ones."""

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


def _add_page_routes(app: "FastAPI", service: StylizeService, config: ServeConfig,
                     styles: Callable[[], dict[str, Path]]) -> None:
    """The page, the health check, the page's settings and the sample styles' thumbnails."""
    thumbnails: dict[str, bytes] = {}

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
            image = fit_within(load_image(path, max_pixels=config.max_pixels), 192, MIN_UPLOAD_SIDE)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=85)
            thumbnails[name] = buffer.getvalue()
        return Response(thumbnails[name], media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


def _add_job_routes(app: "FastAPI", service: StylizeService, config: ServeConfig,
                    styles: Callable[[], dict[str, Path]]) -> None:
    """Submitting a job, polling its status and fetching its result."""

    @app.post("/api/jobs", status_code=202)
    async def create_job(
        content: UploadFile = File(..., description="the photo"),
        style: UploadFile | None = File(None, description="an uploaded style image"),
        style_name: str = Form(""),
        alpha: float = Form(1.0),
        preserve_color: str = Form(""),
        size: int = Form(0),
    ) -> JSONResponse:
        options = job_options(config, alpha, preserve_color)
        size = _check_size(config, size)
        content_bytes = await content.read()
        inspect_upload(content_bytes, "content image", config.max_pixels)
        style_source = await _style_source(style, style_name, styles, config)
        job = Job(id=uuid.uuid4().hex, content=content_bytes, content_name=content.filename or "image",
                  style=style_source, options=options, size=size)
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


def _check_size(config: ServeConfig, size: int) -> int:
    """A job's output size (longest side), checked; the default for 0."""
    size = size or min(config.default_size, config.max_side)
    if not MIN_UPLOAD_SIDE * 4 <= size <= config.max_side:
        raise UploadRejected(400, f"size must be between {MIN_UPLOAD_SIDE * 4} and {config.max_side} pixels (got {size})")
    return size


async def _style_source(style: "UploadFile | None", style_name: str, styles: Callable[[], dict[str, Path]],
                        config: ServeConfig) -> bytes | Path:
    """A job's style: the uploaded image's bytes (checked from its header) or a sample style's path."""
    if style is not None and style.filename:
        style_source = await style.read()
        inspect_upload(style_source, "style image", config.max_pixels)
        return style_source
    if style_name:
        if style_name not in styles():
            raise UploadRejected(400, f"no sample style named {style_name!r}")
        return styles()[style_name]
    raise UploadRejected(400, "choose a sample style or upload a style image")


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
    if weights not in registry.PRETRAINED and not Path(weights).exists():
        known = ", ".join(registry.PRETRAINED) or "none installed"
        raise IecastError(f"no weights {weights!r} (pretrained names: {known}); pass --weights PATH to an iecast "
                          f".safetensors, e.g. one made by `iecast train` then `iecast export CHECKPOINT -o model.safetensors`")
    return Stylizer.from_pretrained(weights, device=device)


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
