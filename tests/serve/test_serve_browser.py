"""The web page in a real headless browser (Debian's chromium driven by Playwright).

Starts `iecast serve` as a subprocess on a free loopback port with a random-init model, uploads
a photo, stylizes, waits for the result image to decode, downloads it and checks the pixels.
In CI a missing browser is a failure; elsewhere the test is skipped with the reason.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deploy_helpers import save_random_stylizer
from serve_helpers import pattern_image, scene_image

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT_ENV = "IECAST_SERVE_SCREENSHOT"  # where to copy the screenshot (e.g. docs/serve_screenshot.png)


def require_browser():
    """The Playwright module, or a skip (outside CI) / failure (in CI) naming what is missing."""
    in_ci = bool(os.environ.get("CI"))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if in_ci:
            pytest.fail("playwright is not installed; it is in the dev extra (pip install -e '.[dev]')")
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        if in_ci:
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs it with apt-get install chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); CI installs it")
    return sync_playwright


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`python -m iecast serve` with a random-init model and two tiny sample styles."""
    folder = tmp_path_factory.mktemp("browser")
    weights = save_random_stylizer(folder / "random.safetensors", seed=3)
    samples = folder / "samples"
    samples.mkdir()
    pattern_image(64, 64, "stripes").save(samples / "bold_stripes.png")
    pattern_image(64, 48, "dots").save(samples / "dot_grid.png")
    port = free_port()
    command = [sys.executable, "-m", "iecast.cli", "serve", "--weights", str(weights), "--port", str(port),
               "--styles", str(samples), "--max-side", "256", "--style-size", "none"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/health", timeout=2) as response:
                assert json.load(response)["ok"]
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"iecast serve did not start: {process.communicate()[0][-2000:]}")
            time.sleep(0.25)
    try:
        yield url, weights, samples, folder
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def test_page_stylizes_and_downloads(served):
    sync_playwright = require_browser()
    url, weights, samples, folder = served
    photo = folder / "photo.png"
    scene_image(160, 108).save(photo)
    not_an_image = folder / "notes.txt"
    not_an_image.write_text("just text")
    screenshot = folder / "serve_screenshot.png"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(folder / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS,
            accept_downloads=True, viewport={"width": 1100, "height": 900})
        try:
            page = context.new_page()
            page.goto(url)
            page.wait_for_selector("#style-picker input[type=radio]", state="attached")
            labels = page.eval_on_selector_all("#style-picker span", "spans => spans.map(s => s.textContent)")
            assert labels == ["Bold stripes", "Dot grid"]
            page.check("#style-picker input[value=bold_stripes]", force=True)
            page.set_input_files("#content", str(photo))
            page.eval_on_selector("#alpha", "e => { e.value = '0.8'; e.dispatchEvent(new Event('input')); }")
            assert page.inner_text("#alpha-value") == "0.80"
            page.click("#go")
            page.wait_for_function(
                "() => { const img = document.getElementById('result');"
                " return !document.getElementById('result-box').hidden && img.complete && img.naturalWidth > 0; }",
                timeout=120_000)
            assert page.eval_on_selector("#result", "img => [img.naturalWidth, img.naturalHeight]") == [160, 108]
            assert page.inner_text("#status").startswith("Done")
            with page.expect_download() as download_info:
                page.click("#download")
            download = download_info.value
            assert download.suggested_filename == "photo-stylized.png"
            downloaded = Image.open(download.path())
            downloaded.load()
            page.screenshot(path=str(screenshot), full_page=True)

            page.set_input_files("#content", str(not_an_image))
            page.click("#go")
            page.wait_for_selector("#error", state="visible", timeout=30_000)
            assert "not a readable image" in page.inner_text("#error")
        finally:
            context.close()
    assert downloaded.size == (160, 108) and downloaded.mode == "RGB"
    from iecast.inference.stylizer import Stylizer

    expected = Stylizer.from_pretrained(weights).stylize(
        Image.open(photo).convert("RGB"), Image.open(samples / "bold_stripes.png").convert("RGB"), alpha=0.8, style_size=None)
    assert np.abs(np.asarray(downloaded, dtype=int) - np.asarray(expected, dtype=int)).max() <= 1
    assert Image.open(screenshot).size[0] == 1100
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(screenshot, os.environ[SCREENSHOT_ENV])
