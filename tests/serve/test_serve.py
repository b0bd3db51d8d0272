"""The web app's API: a real stylization round trip, options, bad input, overload, bounded memory."""
from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from deploy_helpers import save_random_stylizer  # noqa: E402
from iecast.cli import main as cli_main  # noqa: E402
from iecast.serve.app import create_app  # noqa: E402
from iecast.serve.config import ServeConfig  # noqa: E402
from iecast.inference.stylizer import Stylizer  # noqa: E402
from serve_helpers import (get_json, png_bomb, png_bytes, post_job, random_image, request, rss_bytes,  # noqa: E402
                           running, wait_for_job)


@pytest.fixture(scope="module")
def stylizer(tmp_path_factory) -> Stylizer:
    return Stylizer.from_pretrained(save_random_stylizer(tmp_path_factory.mktemp("weights") / "random.safetensors"))


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("samples")
    random_image(48, 40, seed=11).save(folder / "wavy_lines.png")
    random_image(40, 48, seed=12).save(folder / "dots.jpg")
    (folder / "README.txt").write_text("not an image; must not be listed")
    return folder


@pytest.fixture(scope="module")
def server(stylizer, samples):
    """The app with the random-init model and small limits, shared by the tests of this module."""
    app = create_app(stylizer, ServeConfig(max_upload_bytes=200_000, max_side=256, queue_size=3, samples_dir=samples,
                                           style_size=None))  # styles at their own (tiny) size: quick tests
    with running(app) as port:
        yield port, app


class GatedStylizer:
    """A stand-in model: blocks on `gate`, then returns the content (or raises, for bad images)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.calls = 0

    def stylize(self, content, style, options=None):
        self.calls += 1
        assert self.gate.wait(60)
        if content.width == 99:
            raise RuntimeError("simulated failure inside the model")
        return content


def test_round_trip_matches_the_python_api(server, stylizer, samples):
    """Upload, poll with progress, download: the PNG equals `Stylizer.stylize` on the same images."""
    port, _ = server
    content = random_image(50, 34, seed=1)
    status, answer = post_job(port, png_bytes(content), style_name="wavy_lines", alpha=0.7, size=256)
    assert status == 202, answer
    final, seen = wait_for_job(port, answer["id"])
    assert final["status"] == "done", final.get("error")
    progress = [s["progress"] for s in seen]
    assert progress == sorted(progress) and progress[-1] == 1.0 and all(0 <= p <= 1 for p in progress)
    status, headers, body = request(port, "GET", final["result_url"])
    assert status == 200 and headers["content-type"] == "image/png"
    assert 'filename="photo-stylized.png"' in headers["content-disposition"]
    result = Image.open(io.BytesIO(body))
    assert result.size == (50, 34) and (final["width"], final["height"]) == (50, 34)
    expected = stylizer.stylize(content, Image.open(samples / "wavy_lines.png").convert("RGB"), alpha=0.7, style_size=None)
    diff = np.abs(np.asarray(result, dtype=int) - np.asarray(expected, dtype=int))
    assert diff.max() <= 1


def test_uploaded_style_and_size_limit(server, stylizer):
    """An uploaded style works; `size` downscales the longest side (never upscales)."""
    port, _ = server
    content, style = random_image(120, 80, seed=2), random_image(64, 64, seed=3)
    status, answer = post_job(port, png_bytes(content), style=png_bytes(style), size=68)
    assert status == 202, answer
    final, _ = wait_for_job(port, answer["id"])
    assert final["status"] == "done" and (final["width"], final["height"]) == (68, 45)


def test_colour_preservation_is_passed_through(server, stylizer, samples):
    port, _ = server
    content = random_image(40, 36, seed=21)
    status, answer = post_job(port, png_bytes(content), style_name="dots", preserve_color="luminance", size=256)
    assert status == 202, answer
    final, _ = wait_for_job(port, answer["id"])
    assert final["status"] == "done", final.get("error")
    result = Image.open(io.BytesIO(request(port, "GET", final["result_url"])[2]))
    style = Image.open(samples / "dots.jpg").convert("RGB")
    expected = stylizer.stylize(content, style, alpha=1.0, preserve_color="luminance", style_size=None)
    plain = stylizer.stylize(content, style, alpha=1.0, style_size=None)
    as_array = lambda image: np.asarray(image, dtype=int)  # noqa: E731
    assert np.abs(as_array(result) - as_array(expected)).max() <= 1
    assert np.abs(as_array(result) - as_array(plain)).max() > 10
    status, answer = post_job(port, png_bytes(content), style_name="dots", preserve_color="sepia")
    assert status == 400 and "colour mode" in answer["error"]


def test_config_and_sample_styles(server):
    port, _ = server
    status, config = get_json(port, "/api/config")
    assert status == 200
    assert [s["name"] for s in config["styles"]] == ["dots", "wavy_lines"]
    assert config["sizes"] == [256] and config["max_upload_bytes"] == 200_000
    assert config["color_modes"] == ["luminance", "histogram"]
    status, headers, body = request(port, "GET", "/api/styles/dots")
    assert status == 200 and Image.open(io.BytesIO(body)).size == (40, 48)
    assert request(port, "GET", "/api/styles/README")[0] == 404
    status, page_headers, page = request(port, "GET", "/")
    assert status == 200 and b'id="stylize-form"' in page
    assert request(port, "GET", "/static/app.js")[0] == 200


@pytest.mark.parametrize("style_name, message", [("../../etc/passwd", "no sample style"), ("", "choose a sample style")])
def test_bad_style_choice(server, style_name, message):
    port, _ = server
    status, answer = post_job(port, png_bytes(random_image(40, 40, 4)), style_name=style_name)
    assert status == 400 and message in answer["error"]


@pytest.mark.parametrize("data, status_code, message", [
    (b"%PDF-1.4 this is not a picture" * 10, 400, "not a readable image"),
    (b"", 400, "empty"),
    ("tiny", 400, "too small"),
])
def test_bad_content_upload(server, data, status_code, message):
    port, _ = server
    if data == "tiny":
        data = png_bytes(random_image(8, 8, 5))
    status, answer = post_job(port, data, style_name="dots", content_name="upload.pdf")
    assert status == status_code and message in answer["error"], answer
    assert "\n" not in answer["error"]


@pytest.mark.parametrize("field, value", [("alpha", "1.5"), ("alpha", "strong"), ("size", "100000")])
def test_bad_options(server, field, value):
    port, _ = server
    status, answer = post_job(port, png_bytes(random_image(40, 40, 6)), style_name="dots", **{field: value})
    assert status == 400 and answer["error"], answer


def test_truncated_image_fails_the_job_not_the_server(server):
    """A file whose header is fine but whose pixels are cut off fails in the worker with a clear message."""
    port, _ = server
    data = png_bytes(random_image(64, 64, 7))
    status, answer = post_job(port, data[: len(data) // 2], style_name="dots")
    assert status == 202
    final, _ = wait_for_job(port, answer["id"])
    assert final["status"] == "failed" and final["error"].startswith("content image: ")
    assert "/tmp" not in final["error"] and "\n" not in final["error"]
    assert get_json(port, "/api/health") == (200, {"ok": True, "queued": 0, "queue_size": 3})


@pytest.mark.parametrize("chunked", [False, True])
def test_oversize_upload_is_413(server, chunked):
    """Over max_upload_bytes (200 kB here): 413 whether the size is declared or the body is chunked."""
    port, _ = server
    big = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    status, answer = post_job(port, big, style_name="dots", chunked=chunked)
    assert status == 413 and "too large" in answer["error"]
    assert get_json(port, "/api/health")[0] == 200


def test_decompression_bombs_are_refused_without_decoding(stylizer, samples):
    """PNGs of a few kB that decode to 60 MP and 400 MP: 413, and the server's memory does not grow."""
    app = create_app(stylizer, ServeConfig(samples_dir=samples))  # default limits: 25 MB, MAX_PIXELS
    bombs = {"60 MP": png_bomb(10_000, 6_000), "400 MP": png_bomb(20_000, 20_000)}
    assert max(len(b) for b in bombs.values()) < 200_000
    with running(app) as port:
        before = rss_bytes()
        for name, data in bombs.items():
            status, answer = post_job(port, data, style_name="dots")
            assert status == 413, (name, answer)
            assert "megapixels" in answer["error"] or "decompression bomb" in answer["error"]
        assert rss_bytes() - before < 100 * 1024 * 1024
        assert get_json(port, "/api/health")[0] == 200


def test_many_concurrent_requests_queue_or_get_503(samples):
    """24 simultaneous uploads against a queue of 2: some are queued, the rest get a clear 503;
    every answer is JSON, the server stays up, and every accepted job completes."""
    model = GatedStylizer()
    app = create_app(model, ServeConfig(queue_size=2, keep_results=50, samples_dir=samples))
    service = app.state.service
    photo = png_bytes(random_image(40, 40, 8))
    with running(app) as port:
        with ThreadPoolExecutor(24) as pool:
            answers = list(pool.map(lambda _: post_job(port, photo, style_name="dots"), range(24)))
        accepted = [a for s, a in answers if s == 202]
        rejected = [a for s, a in answers if s == 503]
        assert len(accepted) + len(rejected) == 24
        assert 2 <= len(accepted) <= 3  # two waiting, plus the one the worker holds
        assert all("busy" in a["error"] for a in rejected)
        assert service.pending.qsize() <= 2 and len(service.jobs) <= 3
        positions = [get_json(port, f"/api/jobs/{a['id']}")[1] for a in accepted]
        queued = sorted(p["position"] for p in positions if p["status"] == "queued")
        assert queued == list(range(1, len(queued) + 1))
        model.gate.set()
        finals = [wait_for_job(port, a["id"])[0] for a in accepted]
        assert all(f["status"] == "done" for f in finals)
        status, answer = post_job(port, photo, style_name="dots")
        assert status == 202 and wait_for_job(port, answer["id"])[0]["status"] == "done"


def test_model_failure_is_reported_and_old_results_are_dropped(samples):
    """An exception in the model fails that job only (with a generic line); finished results beyond
    keep_results are forgotten."""
    model = GatedStylizer()
    model.gate.set()
    app = create_app(model, ServeConfig(queue_size=2, keep_results=1, samples_dir=samples))
    with running(app) as port:
        status, failing = post_job(port, png_bytes(random_image(99, 40, 9)), style_name="dots")
        final, _ = wait_for_job(port, failing["id"])
        assert final["status"] == "failed" and "internal error" in final["error"]
        assert "simulated" not in final["error"]  # the exception's own text stays in the server's log
        ids = []
        for seed in range(3):
            status, answer = post_job(port, png_bytes(random_image(40, 40, seed)), style_name="dots")
            assert wait_for_job(port, answer["id"])[0]["status"] == "done"
            ids.append(answer["id"])
        assert request(port, "GET", f"/api/jobs/{ids[0]}/result")[0] == 404
        assert request(port, "GET", f"/api/jobs/{ids[-1]}/result")[0] == 200
        assert len(app.state.service.jobs) == 1


def test_serve_without_weights_fails_in_one_line(tmp_path, capsys):
    assert cli_main(["serve", "--weights", str(tmp_path / "missing.safetensors")]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and error.startswith("iecast: error: ") and "--weights" in error
