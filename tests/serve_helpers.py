"""Helpers for the web app tests: run the app on a free loopback port, talk HTTP with the stdlib."""
from __future__ import annotations

import contextlib
import http.client
import io
import json
import struct
import threading
import time
import uuid
import zlib
from typing import Any, Iterator

from PIL import Image


@contextlib.contextmanager
def running(app: Any) -> Iterator[int]:
    """Serve `app` in a thread on 127.0.0.1 (a free port) as `iecast serve` does (`iecast.serve.limits.make_server`,
    with the limits of the app's `ServeConfig`); yields the port."""
    from iecast.serve.limits import bind_socket, make_server

    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = make_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def request(port: int, method: str, path: str, body: bytes | Iterator[bytes] | None = None,
            headers: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request on a fresh connection; (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=not isinstance(body, (bytes, type(None))))
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def get_json(port: int, path: str) -> tuple[int, dict]:
    status, _, body = request(port, "GET", path)
    return status, json.loads(body)


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """Encode a multipart/form-data body; returns (body, content type)."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f'Content-Type: application/octet-stream\r\n\r\n'.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def post_job(port: int, content: bytes, style: bytes | None = None, style_name: str | None = None,
             content_name: str = "photo.png", chunked: bool = False, headers: dict[str, str] | None = None,
             **options: Any) -> tuple[int, dict]:
    """POST /api/jobs (with extra `headers`); (status, JSON answer)."""
    fields = {k: str(v) for k, v in options.items()}
    if style_name is not None:
        fields["style_name"] = style_name
    files = {"content": (content_name, content)}
    if style is not None:
        files["style"] = ("style.png", style)
    body, content_type = multipart(fields, files)
    payload: bytes | Iterator[bytes] = body
    if chunked:
        payload = iter([body[i:i + 65536] for i in range(0, len(body), 65536)])
    status, answer_headers, answer = request(port, "POST", "/api/jobs", payload,
                                             {"Content-Type": content_type, **(headers or {})})
    assert answer_headers.get("content-type", "").startswith("application/json"), (status, answer[:200])
    return status, json.loads(answer)


def wait_for_job(port: int, job_id: str, timeout: float = 120) -> tuple[dict, list[dict]]:
    """Poll a job until it is done or failed; (final state, every state seen)."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, info = get_json(port, f"/api/jobs/{job_id}")
        assert status == 200, info
        seen.append(info)
        if info["status"] in ("done", "failed"):
            return info, seen
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not finished after {timeout}s: {seen[-1]}")


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def random_image(width: int, height: int, seed: int) -> Image.Image:
    import numpy as np

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of width x height zeros: a few KB on disk, width*height bytes once decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    rows_per_block = max(1, (1 << 22) // len(row))
    pieces = [compressor.compress(row * min(rows_per_block, height - y)) for y in range(0, height, rows_per_block)]
    idat = b"".join(pieces) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def rss_bytes() -> int:
    """This process's resident memory (Linux)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def scene_image(width: int, height: int) -> Image.Image:
    """A synthetic landscape photo (sky gradient, sun, hills): smooth, deterministic, licence-free."""
    from PIL import ImageDraw

    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / max(1, height - 1)
        draw.line([(0, y), (width, y)], fill=(int(90 + 120 * t), int(150 + 80 * t), int(235 - 30 * t)))
    draw.ellipse([width * 0.68, height * 0.12, width * 0.86, height * 0.12 + width * 0.18], fill=(255, 214, 90))
    draw.polygon([(0, height), (0, height * 0.62), (width * 0.35, height * 0.5), (width * 0.7, height * 0.66),
                  (width, height * 0.58), (width, height)], fill=(70, 140, 70))
    draw.rectangle([width * 0.2, height * 0.55, width * 0.32, height * 0.75], fill=(150, 60, 50))
    return image


def pattern_image(width: int, height: int, kind: str) -> Image.Image:
    """A synthetic 'artwork': bold diagonal stripes or a dot grid."""
    from PIL import ImageDraw

    image = Image.new("RGB", (width, height), (245, 235, 210) if kind == "dots" else (30, 40, 90))
    draw = ImageDraw.Draw(image)
    palette = [(230, 80, 40), (250, 190, 40), (40, 150, 200), (200, 60, 140)]
    if kind == "stripes":
        for i, x in enumerate(range(-height, width, 8)):
            draw.line([(x, height), (x + height, 0)], fill=palette[i % len(palette)], width=4)
    else:
        for i, y in enumerate(range(4, height, 10)):
            for j, x in enumerate(range(4, width, 10)):
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=palette[(i + j) % len(palette)])
    return image
