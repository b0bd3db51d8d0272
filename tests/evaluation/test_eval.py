"""The evaluation harness: methods, caching, reports (schema, HTML, images) and bad input."""
from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest
import torch
from PIL import Image

from iecast import IecastError
from iecast.cli import main
from iecast.evaluation.harness import EvalConfig, evaluate, evaluate_video, list_eval_images, load_frames, mean_ci95
from iecast.evaluation.methods import parse_method
from iecast.evaluation.report import REPORT_SCHEMA
from iecast.evaluation.gatys import GatysConfig

ENCODER = "vgg16-imagenet-offline-normalised"


def write_images(folder: Path, names: list[str], size=(40, 32), seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    paths = []
    for name in names:
        arr = (torch.rand(size[1] // 4, size[0] // 4, 3, generator=g) * 255).byte().numpy()
        path = folder / name
        Image.fromarray(arr).resize(size, Image.Resampling.BICUBIC).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def stylizer_files(tmp_path_factory):
    """Random-init SANet and AdaIN stylizers in our format (what the trainer writes)."""
    from iecast.models.network import StyleTransferNetwork
    from iecast.models.transform import build_transform
    from iecast.weights import load_encoder, save_stylizer

    root = tmp_path_factory.mktemp("stylizers")
    encoder = load_encoder(ENCODER)
    files = {}
    for kind in ("sanet", "adain"):
        torch.manual_seed(0)
        files[kind] = save_stylizer(root / f"random_{kind}.safetensors", StyleTransferNetwork(encoder, build_transform(kind)), ENCODER)
    return files


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaldata")
    write_images(root / "content", ["a.jpg", "b.png"], seed=1)
    write_images(root / "style", ["x.jpg", "y.jpg"], size=(32, 36), seed=2)
    frame = write_images(root / "video_src", ["f.png"], size=(56, 40), seed=3)[0]
    wide = Image.open(frame)
    (root / "video").mkdir()
    (root / "video_rev").mkdir()
    for t in range(3):
        wide.crop((t * 2, 0, t * 2 + 40, 40)).save(root / "video" / f"frame_{t + 1:04d}.png")
        wide.crop((t * 5, 0, t * 5 + 40, 40)).save(root / "video_rev" / f"frame_{3 - t:04d}.png")
    return root


def run_eval(data: Path, out: Path, methods: list[str], **kwargs) -> dict:
    config = EvalConfig(contents=data / "content", styles=data / "style", out=out, methods=methods, size=32,
                        perceptual="offline", gatys=GatysConfig(steps=1), progress=False, **kwargs)
    return evaluate(config)


class ImageCollector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def check_html(path: Path) -> list[str]:
    parser = ImageCollector()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert "html" in parser.tags and "table" in parser.tags
    for src in parser.sources:
        assert not src.startswith(("http:", "https:", "/")), src
        assert (path.parent / src).is_file(), f"{src} referenced by {path.name} does not exist"
    return parser.sources


@pytest.fixture(scope="module")
def full_run(data, stylizer_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("evalout") / "run"
    report = run_eval(data, out, [f"iecast:{stylizer_files['sanet']}", f"adain=iecast:{stylizer_files['adain']}", "gatys"],
                      videos=[data / "video", data / "video_rev"], video_frames=3)
    return out, report


def test_report_files_are_valid(full_run):
    out, report = full_run
    on_disk = json.loads((out / "report.json").read_text())
    jsonschema.validate(on_disk, REPORT_SCHEMA)
    assert [m["label"] for m in on_disk["methods"]] == ["iecast-random_sanet", "adain", "gatys"]
    assert [m["description"].get("transform") for m in on_disk["methods"][:2]] == ["sanet", "adain"]
    for m in on_disk["methods"]:
        assert len(m["pairs"]) == 2 * 2
        assert {(p["content"], p["style"]) for p in m["pairs"]} == {(c, s) for c in "ab" for s in "xy"}
        for p in m["pairs"]:
            assert (out / p["output"]).is_file()
            assert set(p["metrics"]) == {"content_loss", "style_loss", "gram_style_loss", "ssim", "perceptual-vgg16-offline_content"}
        values = [p["metrics"]["ssim"] for p in m["pairs"]]
        assert m["summary"]["ssim"]["mean"] == pytest.approx(sum(values) / len(values))
        assert m["summary"]["ssim"]["n"] == 4
        assert [v["name"] for v in m["videos"]] == [c["name"] for c in on_disk["videos"]] == ["video", "video_rev"]
        for clip, raw in zip(m["videos"], on_disk["videos"]):
            assert clip["perceptual_raw"] == pytest.approx(raw["raw"]["perceptual_mean"])
            assert clip["ratio"] == pytest.approx(clip["perceptual_mean"] / clip["perceptual_raw"])
            assert clip["warping_ratio"] == pytest.approx(clip["warping_error"] / raw["raw"]["warping_error"])
            assert all((out / f).is_file() for f in clip["frames"]) and len(clip["frames"]) == 3
        ratios = [clip["ratio"] for clip in m["videos"]]
        summary = m["video_summary"]["ratio"]
        assert summary["n"] == 2 and summary["mean"] == pytest.approx(sum(ratios) / 2)
        half = 12.706 * abs(ratios[0] - ratios[1]) / 2  # t(0.975, 1) * sd / sqrt(2), with sd = |a - b| / sqrt(2)
        assert summary["ci95"] == pytest.approx([summary["mean"] - half, summary["mean"] + half], rel=1e-3)
    raw_floors = [c["raw"]["perceptual_mean"] for c in on_disk["videos"]]
    assert raw_floors[0] != pytest.approx(raw_floors[1])  # the clips move differently, so their floors differ
    assert not any("lpips" in k.lower() for k in on_disk["methods"][0]["summary"])
    sources = check_html(out / "index.html")
    assert len(sources) >= 3 * (2 * 2 + 2 + 2)  # per method: outputs + content and style headers
    markdown = (out / "report.md").read_text()
    assert "| gatys |" in markdown and "Video stability (2 clip(s)" in markdown and "perceptual-vgg16-offline" in markdown
    assert "| method | video | video_rev | mean ± 95% |" in markdown


def test_paired_differences_to_the_first_method(full_run):
    """Each later method's per-pair (and per-clip) difference to the first, recomputed here."""
    out, report = full_run
    reference, *others = json.loads((out / "report.json").read_text())["methods"]
    assert reference["paired"] is None
    ref_pairs = {(p["content"], p["style"]): p["metrics"] for p in reference["pairs"]}
    for m in others:
        assert m["paired"]["against"] == reference["label"]
        for key, summary in m["paired"]["summary"].items():
            diffs = [p["metrics"][key] - ref_pairs[(p["content"], p["style"])][key] for p in m["pairs"]]
            assert summary == mean_ci95(diffs)
            # the difference of means equals the mean of differences; the interval is the paired one
            assert summary["mean"] == pytest.approx(m["summary"][key]["mean"] - reference["summary"][key]["mean"])
        ratios = [mine["ratio"] - theirs["ratio"] for mine, theirs in zip(m["videos"], reference["videos"])]
        assert m["paired"]["video_summary"]["ratio"] == mean_ci95(ratios)
    markdown = (out / "report.md").read_text()
    assert "Paired differences to `iecast-random_sanet`" in markdown
    delta = others[0]["paired"]["summary"]["content_loss"]["mean"]
    assert f"| adain | {delta:+.3g}" in markdown


def test_outputs_are_cached(full_run, data, stylizer_files, monkeypatch):
    out, report = full_run
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*_stylized_*.png")}
    from iecast.evaluation.gatys import GatysStylizer

    def must_not_stylize(*args, **kwargs):
        raise AssertionError("a cached output was recomputed")

    monkeypatch.setattr(GatysStylizer, "stylize", must_not_stylize)
    # Gatys optimises with the judge, which the first run chose from its models: the same judge reuses the cache
    again = run_eval(data, out, ["gatys"], encoder=report["settings"]["encoder"])
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*_stylized_*.png")} == stamps
    gatys_before = next(m for m in report["methods"] if m["label"] == "gatys")
    assert again["methods"][0]["pairs"] == gatys_before["pairs"]


def test_changed_settings_need_overwrite(full_run, data):
    out, _ = full_run
    with pytest.raises(IecastError, match="other settings"):
        evaluate(EvalConfig(contents=data / "content", styles=data / "style", out=out, methods=["gatys"], size=32,
                            perceptual="offline", gatys=GatysConfig(steps=2), progress=False))


def test_limit_and_folder_method(full_run, data, tmp_path):
    out, _ = full_run
    report = run_eval(data, tmp_path / "lim", [f"prev=folder:{out / 'gatys'}"], limit=1, art_fid=False)
    assert len(report["methods"][0]["pairs"]) == 1
    assert report["methods"][0]["pairs"][0]["output"].endswith("a_stylized_x.png")
    check_html(tmp_path / "lim" / "index.html")


def test_folder_method_with_missing_outputs_is_a_one_line_error(full_run, data, tmp_path):
    out, _ = full_run
    partial = tmp_path / "partial"
    partial.mkdir()
    for p in sorted((out / "gatys").glob("*_stylized_*.png"))[:3]:
        (partial / p.name).write_bytes(p.read_bytes())
    with pytest.raises(IecastError, match=r"mismatched counts: 3 outputs for 2 contents x 2 styles = 4 pairs") as err:
        run_eval(data, tmp_path / "never", [f"folder:{partial}"])
    assert "\n" not in str(err.value)
    assert not (tmp_path / "never").exists()


def test_bad_inputs_are_one_line_errors_without_output(data, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    cases = [
        (["-c", str(tmp_path / "empty"), "-s", str(data / "style"), "-m", "gatys"], "empty: no content image files"),
        (["-c", str(data / "content"), "-s", str(data / "style"), "-m", "iecast:/nonexistent/model.safetensors"],
         "neither a file nor a pretrained name"),
        (["-c", str(data / "content"), "-s", str(data / "style"), "-m", f"official:{tmp_path / 'empty'}"], "decoder_iter_"),
        (["-c", str(data / "content"), "-s", str(data / "style"), "-m", "wct"], "unknown method kind"),
        (["-c", str(data / "content"), "-s", str(data / "style"), "-m", "gatys", "-m", "gatys"], "share the label"),
        (["-c", str(data / "content"), "-s", str(data / "style"), "-m", "gatys", "--video", str(data / "video_src")],
         "at least 2 frames (found 1)"),
        (["-c", str(data / "content"), "-s", str(data / "style"), "-m", "gatys", "--video", str(data / "video"),
          "--video", str(data / "video")], "two videos share the name 'video'"),
    ]
    for argv, message in cases:
        out = tmp_path / "out"
        assert main(["eval", *argv, "-o", str(out), "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not out.exists()


def test_load_frames_and_eval_video(data, tmp_path):
    frames = load_frames(data / "video")
    assert len(frames) == 3 and frames[0].size == (40, 40)
    with pytest.raises(IecastError, match="at least 2 frames"):
        load_frames(data / "video_src")
    with pytest.raises(IecastError, match="no such video"):
        load_frames(tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(IecastError, match="not a readable video"):
        load_frames(bad)
    result = evaluate_video(data / "video", data / "video", perceptual="offline")
    assert result["ratio"] == pytest.approx(1.0) and result["frames"] == 3
    two = tmp_path / "two"
    two.mkdir()
    for f in sorted((data / "video").iterdir())[:2]:
        (two / f.name).write_bytes(f.read_bytes())
    with pytest.raises(IecastError, match="mismatched frame counts: 2 stylized frames for 3 raw frames"):
        evaluate_video(two, data / "video", perceptual="offline")


def test_eval_video_cli(data, tmp_path, capsys):
    out = tmp_path / "v.json"
    assert main(["eval-video", "--stylized", str(data / "video"), "--raw", str(data / "video"), "--perceptual", "offline",
                 "--json", str(out)]) == 0
    assert "ratio 1.0000" in capsys.readouterr().out
    assert json.loads(out.read_text())["distance"] == "perceptual-vgg16-offline"
    assert main(["eval-video", "--stylized", str(data / "video_src"), "--raw", str(data / "video")]) == 1
    assert "at least 2 frames (found 1)" in capsys.readouterr().err


def test_video_file_through_pyav(data, tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 40, 40, "yuv420p"
        for f in sorted((data / "video").iterdir()):
            for packet in stream.encode(av.VideoFrame.from_image(Image.open(f).convert("RGB"))):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    frames = load_frames(path)
    assert len(frames) == 3 and frames[0].size == (40, 40)
    assert len(load_frames(path, max_frames=2)) == 2


def test_official_method_runs_the_authors_files(tmp_path):
    """`official:<dir>` finds the three release files (highest iteration) and stylizes."""
    from reference import ReferenceTransformer, reference_decoder, reference_vgg_normalised, small_init_

    from iecast.evaluation.methods import build_method
    from iecast.weights import load_encoder

    torch.manual_seed(1)
    vgg, decoder, transformer = reference_vgg_normalised(), reference_decoder(), ReferenceTransformer()
    for module in (vgg, decoder, transformer):
        small_init_(module)
    torch.save(vgg.state_dict(), tmp_path / "vgg_normalised.pth")
    torch.save(decoder.state_dict(), tmp_path / "decoder_iter_160000.pth")
    torch.save(transformer.state_dict(), tmp_path / "transformer_iter_160000.pth")
    (tmp_path / "decoder_iter_5000.pth").write_bytes(b"older, never read")
    method = build_method(parse_method(f"official:{tmp_path}"), load_encoder(ENCODER))
    assert method.label == f"official-{tmp_path.name}" and method.description["decoder"].endswith("decoder_iter_160000.pth")
    out = method.stylize(torch.rand(1, 3, 36, 44), torch.rand(1, 3, 32, 32))
    assert out.shape == (1, 3, 36, 44)


def test_parse_method_labels():
    assert parse_method("iecast:default").label == "iecast-default"
    assert parse_method("iecast:runs/x/final.safetensors").label == "iecast-final"
    assert parse_method("sanet base=iecast:a.safetensors").label == "sanet-base"
    assert parse_method("official:/ckpt/release/").label == "official-release"
    assert parse_method("gatys").kind == "gatys"
    with pytest.raises(IecastError, match="takes no argument"):
        parse_method("gatys:10")
    with pytest.raises(IecastError, match="needs a"):
        parse_method("iecast:")


def test_mean_ci95_against_hand_values():
    result = mean_ci95([1.0, 2.0, 3.0, 4.0])
    half = 3.182446305284263 * (1.2909944487358056 / 2)  # t(0.975, 3) * s / sqrt(4)
    assert result["mean"] == 2.5 and result["n"] == 4
    assert result["ci95"] == pytest.approx([2.5 - half, 2.5 + half])
    assert mean_ci95([5.0]) == {"mean": 5.0, "ci95": None, "n": 1}
    assert mean_ci95([]) == {"mean": None, "ci95": None, "n": 0}


def test_list_eval_images_sorted_limited_and_duplicate_stems(tmp_path):
    write_images(tmp_path / "d", ["b.jpg", "a.jpg", "c.png"])
    (tmp_path / "d" / "notes.txt").write_text("x")
    assert [p.name for p in list_eval_images(tmp_path / "d", limit=2)] == ["a.jpg", "b.jpg"]
    listing = tmp_path / "lists" / "pick.txt"
    listing.parent.mkdir()
    listing.write_text("# chosen\n../d/c.png\n\n" + str(tmp_path / "d" / "a.jpg") + "\n")
    assert list_eval_images(listing) == [tmp_path / "d" / "c.png", tmp_path / "d" / "a.jpg"]
    listing.write_text("../d/missing.jpg\n")
    with pytest.raises(IecastError, match=r"pick.txt:1: ../d/missing.jpg: no such file"):
        list_eval_images(listing)
    write_images(tmp_path / "d", ["a.png"])
    with pytest.raises(IecastError, match="share the name 'a'"):
        list_eval_images(tmp_path / "d")
