"""The web server against hostile or careless clients: half-open connections (slowloris), slow
bodies, more connections than the cap, requests from other web pages (Origin), malformed uploads,
model failures that must not leak their text; and the `serve` command's first-run frictions."""
from __future__ import annotations

import json
import socket
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from deploy_helpers import save_random_stylizer  # noqa: E402
from iecast.cli import main as cli_main  # noqa: E402
from iecast.serve.app import create_app  # noqa: E402
from iecast.serve.config import ServeConfig  # noqa: E402
from serve_helpers import (get_json, multipart, png_bytes, post_job, random_image, request, running,  # noqa: E402
                           wait_for_job)

PARTIAL_HEADERS = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "  # never finished


class EchoStylizer:
    """A stand-in model: returns the content, or raises `error` when one is set."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error

    def stylize(self, content, style, options=None):
        if self.error is not None:
            raise self.error
        return content


@pytest.fixture
def samples(tmp_path):
    random_image(40, 40, seed=1).save(tmp_path / "dots.png")
    return tmp_path


def open_half_open(port: int, count: int) -> list[socket.socket]:
    """`count` connections that send the start of a request's headers and never finish them."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(PARTIAL_HEADERS)
        sockets.append(sock)
    return sockets


def closed_by_server(sock: socket.socket, within: float) -> bytes | None:
    """What the server sent before closing `sock` (b"" for a bare close), or None if still open after `within` s."""
    sock.settimeout(within)
    received = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return received
            received += chunk
    except (socket.timeout, TimeoutError):
        return None
    except ConnectionResetError:
        return received


def timed_health(port: int) -> tuple[int, float]:
    start = time.perf_counter()
    status, _, _ = request(port, "GET", "/api/health", timeout=5)
    return status, time.perf_counter() - start


def test_health_answers_beside_200_half_open_connections(samples):
    """Defect 8: 80 half-open connections used to make every request 503 until they closed."""
    app = create_app(EchoStylizer(), ServeConfig(samples_dir=samples))
    with running(app) as port:
        sockets = open_half_open(port, 200)
        try:
            times = []
            for _ in range(5):
                status, elapsed = timed_health(port)
                assert status == 200
                times.append(elapsed)
            assert max(times) < 1.0, times
            status, answer = post_job(port, png_bytes(random_image(40, 40, 2)), style_name="dots")
            assert status == 202, answer
        finally:
            for sock in sockets:
                sock.close()
        status, elapsed = timed_health(port)
        assert status == 200 and elapsed < 1.0


def test_slow_headers_and_bodies_are_timed_out(samples):
    app = create_app(EchoStylizer(), ServeConfig(samples_dir=samples, header_timeout_s=1.0, body_timeout_s=1.5))
    with running(app) as port:
        started = time.monotonic()
        slow_headers = open_half_open(port, 20)
        slow_body = socket.create_connection(("127.0.0.1", port), timeout=5)
        slow_body.sendall(b"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
                          b"Content-Length: 100000\r\n\r\n--x\r\n")
        try:
            answers = [closed_by_server(sock, within=6) for sock in slow_headers]
            assert all(a is not None for a in answers), "a half-open connection outlived the header timeout"
            assert all(a == b"" or a.startswith(b"HTTP/1.1 408") for a in answers), answers[:3]
            body_answer = closed_by_server(slow_body, within=6)
            assert body_answer is not None, "a stalled body outlived the body timeout"
            assert time.monotonic() - started < 8
        finally:
            for sock in slow_headers + [slow_body]:
                sock.close()
        assert timed_health(port)[0] == 200
        status, answer = post_job(port, png_bytes(random_image(40, 40, 3)), style_name="dots")
        assert status == 202, answer


def test_connections_over_the_cap_evict_the_oldest_half_open_ones(samples):
    app = create_app(EchoStylizer(), ServeConfig(samples_dir=samples, max_connections=40))
    with running(app) as port:
        sockets = open_half_open(port, 120)
        try:
            status, elapsed = timed_health(port)
            assert status == 200 and elapsed < 1.0
            assert closed_by_server(sockets[0], within=3) is not None  # the oldest went first
            assert len(app.state.connections()) <= 40
        finally:
            for sock in sockets:
                sock.close()
        deadline = time.monotonic() + 5
        while len(app.state.connections()) > 1 and time.monotonic() < deadline:  # all gone once the clients close
            time.sleep(0.05)
        assert len(app.state.connections()) <= 1
        assert timed_health(port)[0] == 200


@pytest.mark.parametrize("origin, host", [
    ("http://evil.example", None),
    ("null", None),
    ("http://rebound.example:{port}", "rebound.example:{port}"),  # DNS rebinding: same origin, foreign name
])
def test_job_from_another_web_page_is_403(samples, origin, host):
    app = create_app(EchoStylizer(), ServeConfig(samples_dir=samples))
    with running(app) as port:
        headers = {"Origin": origin.format(port=port)}
        if host:
            headers["Host"] = host.format(port=port)
        status, answer = post_job(port, png_bytes(random_image(40, 40, 4)), style_name="dots", headers=headers)
        assert status == 403 and "origin" in answer["error"] and "\n" not in answer["error"], answer
        assert not app.state.service.jobs


def test_same_origin_and_no_origin_are_accepted(samples):
    app = create_app(EchoStylizer(), ServeConfig(samples_dir=samples))
    with running(app) as port:
        photo = png_bytes(random_image(40, 40, 5))
        for headers in ({"Origin": f"http://127.0.0.1:{port}"}, {"Origin": f"http://localhost:{port}",
                                                                  "Host": f"localhost:{port}"}, {}):
            status, answer = post_job(port, photo, style_name="dots", headers=headers)
            assert status == 202, (headers, answer)


def _malformed_bodies():
    photo = png_bytes(random_image(40, 40, 6))
    body, content_type = multipart({"style_name": "dots"}, {"content": ("a.png", photo)})
    many, many_type = multipart({f"f{i}": "x" for i in range(1500)}, {"content": ("a.png", photo)})
    as_text, text_type = multipart({"content": "not a file", "style_name": "dots"}, {})
    return [
        ("no boundary", body, "multipart/form-data"),
        ("garbage", b"x" * 200, content_type),
        ("truncated", body[: len(body) // 2], content_type),
        ("too many fields", many, many_type),
        ("content as text", as_text, text_type),
        ("urlencoded", b"content=abc&style_name=dots", "application/x-www-form-urlencoded"),
        ("json", b'{"content": 1}', "application/json"),
        ("no content type", b"hello", None),
    ]


@pytest.mark.parametrize("name, body, content_type", _malformed_bodies(), ids=[c[0] for c in _malformed_bodies()])
def test_malformed_uploads_answer_one_line_json_errors(samples, name, body, content_type):
    app = create_app(EchoStylizer(), ServeConfig(samples_dir=samples))
    with running(app) as port:
        headers = {"Content-Type": content_type} if content_type else {}
        status, answer_headers, answer = request(port, "POST", "/api/jobs", body, headers)
        assert status == 400, (status, answer)
        assert answer_headers["content-type"].startswith("application/json")
        error = json.loads(answer)
        assert list(error) == ["error"] and error["error"] and "\n" not in error["error"], error
        assert "<class" not in error["error"]


def test_unknown_paths_and_methods_answer_json_errors(samples):
    app = create_app(EchoStylizer(), ServeConfig(samples_dir=samples))
    with running(app) as port:
        for method, path, expected in (("GET", "/nope", 404), ("PUT", "/api/jobs", 405), ("DELETE", "/api/health", 405)):
            status, headers, body = request(port, method, path)
            assert status == expected and list(json.loads(body)) == ["error"], (method, path, body)


@pytest.mark.parametrize("error, says", [
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
                  "you tried to allocate 5500000000 bytes."), "memory"),
    (MemoryError(), "memory"),
    (RuntimeError("simulated failure inside the model\nwith a second line"), "internal error"),
    (ValueError("/home/someone/secret/path.py: unexpected shape torch.Size([1, 3])"), "internal error"),
])
def test_unexpected_model_errors_become_a_generic_line(samples, error, says):
    """Defect 1 (server part): the client never sees allocator text or any exception's own message."""
    app = create_app(EchoStylizer(error), ServeConfig(samples_dir=samples))
    with running(app) as port:
        status, answer = post_job(port, png_bytes(random_image(40, 40, 7)), style_name="dots")
        assert status == 202, answer
        final, _ = wait_for_job(port, answer["id"])
        assert final["status"] == "failed" and says in final["error"], final
        message = final["error"]
        assert "\n" not in message and "alloc" not in message.lower() and "bytes" not in message
        assert str(error).split(":")[0] not in message or not str(error)
        assert get_json(port, "/api/health")[0] == 200


def test_package_sample_styles_are_paintings_with_a_good_default():
    from iecast.serve.uploads import default_samples_dir, list_sample_styles

    styles = list_sample_styles(default_samples_dir())
    assert list(styles)[0] == "starry_night"
    assert "classic_cars" not in styles and len(styles) >= 3
    from PIL import Image

    for path in styles.values():
        with Image.open(path) as image:
            assert max(image.size) <= 512 and image.mode == "RGB"
    notes = (default_samples_dir() / "SOURCES.md").read_text()
    assert all(path.name in notes for path in styles.values())


def test_serve_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        cli_main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for default in ("(default: 8000)", "(default: 127.0.0.1", "(default: 25.0)", "(default: 4)", "(default: auto)"):
        assert default in text, default


def test_serve_on_a_busy_port_fails_in_one_line_before_printing_the_url(tmp_path, capsys, monkeypatch):
    import uvicorn

    def never(*_args, **_kwargs):
        raise AssertionError("the server must not start on a busy port")

    monkeypatch.setattr(uvicorn.Server, "run", never)
    monkeypatch.setattr(uvicorn, "run", never)
    weights = save_random_stylizer(tmp_path / "random.safetensors")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert cli_main(["serve", "--weights", str(weights), "--port", str(port)]) == 1
    captured = capsys.readouterr()
    assert "http://" not in captured.out
    error = captured.err.strip()
    assert error.count("\n") == 0 and error.startswith("iecast: error: ") and str(port) in error, error
