"""The per-pair metric registry: every entry complete, and one new entry reaches pair_metrics and the reports."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from iecast.evaluation import registry, tradeoff
from iecast.evaluation.config import EvalConfig
from iecast.evaluation.harness import evaluate
from iecast.evaluation.metrics import OfflinePerceptualDistance
from iecast.evaluation.registry import PAIR_METRICS, InputFeatures, PairMetric
from iecast.evaluation.report import REPORT_SCHEMA
from iecast.evaluation.runner import pair_metrics
from iecast.weights import load_encoder

ENCODER = "vgg16-imagenet-offline-normalised"
BRIGHTNESS = PairMetric("mean_brightness", lambda pair: float(pair.output.mean()), False,
                        "mean of the output's RGB values (a test metric)")


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(ENCODER)


def images(seed: int, n: int, size=(40, 32)) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, 3, size[1], size[0], generator=g) for _ in range(n)]


def test_every_entry_has_a_name_direction_and_description():
    assert list(PAIR_METRICS)[:4] == ["content_loss", "style_loss", "gram_style_loss", "ssim"]
    for key, m in PAIR_METRICS.items():
        assert m.name == key
        assert isinstance(m.lower_is_better, bool), key
        assert isinstance(m.description, str) and m.description.strip(), key
        assert callable(m.compute), key
    assert registry.directions("lpips-alex") == {"content_loss": True, "style_loss": True, "gram_style_loss": True,
                                                 "ssim": False, "lpips-alex_content": True}
    assert registry.descriptions("lpips-alex")["lpips-alex_content"] == "lpips-alex distance between output and content"
    assert set(tradeoff.CURVE_METRICS) <= set(registry.fixed_names())
    assert REPORT_SCHEMA["properties"]["methods"]["items"]["properties"]["pairs"]["items"]["properties"]["metrics"][
        "required"] == ["content_loss", "style_loss", "gram_style_loss", "ssim"]


def test_pair_metrics_computes_every_entry_in_order(encoder):
    output, content, style = images(0, 3)
    feats = InputFeatures(encoder, OfflinePerceptualDistance(encoder))
    values = pair_metrics(output, content, "c", style, "s", feats)
    assert list(values) == list(registry.descriptions(feats.distance.name))
    assert all(isinstance(v, float) for v in values.values())
    assert pair_metrics(content, content, "c", style, "s", feats)["ssim"] == pytest.approx(1.0)


def test_a_registered_metric_reaches_pair_metrics_and_the_reports(encoder, monkeypatch, tmp_path):
    monkeypatch.setitem(PAIR_METRICS, BRIGHTNESS.name, BRIGHTNESS)
    output, content, style = images(1, 3)
    values = pair_metrics(output, content, "c", style, "s", InputFeatures(encoder, OfflinePerceptualDistance(encoder)))
    assert list(values)[-1] == "mean_brightness" and values["mean_brightness"] == pytest.approx(float(output.mean()))

    for kind, seed in (("content", 2), ("style", 3)):
        for i, image in enumerate(images(seed, 2)):
            (tmp_path / kind).mkdir(exist_ok=True)
            Image.fromarray((image[0].permute(1, 2, 0) * 255).byte().numpy()).save(tmp_path / kind / f"{kind[0]}{i}.png")
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    for c in (tmp_path / "content").iterdir():  # a precomputed "method" that returns the content unchanged
        for s in (tmp_path / "style").iterdir():
            (outputs / f"{c.stem}_stylized_{s.stem}.png").write_bytes(c.read_bytes())
    out = tmp_path / "run"
    evaluate(EvalConfig(contents=tmp_path / "content", styles=tmp_path / "style", out=out, methods=[f"same=folder:{outputs}"],
                        size=32, encoder=ENCODER, perceptual="offline", art_fid=False, progress=False))
    report = json.loads((out / "report.json").read_text())
    assert report["metrics"]["mean_brightness"] == BRIGHTNESS.description
    assert all(list(p["metrics"])[-1] == "mean_brightness" for p in report["methods"][0]["pairs"])
    assert 0 < report["methods"][0]["summary"]["mean_brightness"]["mean"] < 1
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "| perceptual-vgg16-offline_content ↓ | mean_brightness ↑ | seconds ↓ |" in markdown
    assert f"- `mean_brightness`: {BRIGHTNESS.description}" in markdown
    assert "<th>mean_brightness ↑</th>" in (out / "index.html").read_text(encoding="utf-8")
