"""Running one method over every content x style pair: inputs written once at evaluation size,
outputs cached per method (invalidated when its settings change), each output measured."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from iecast.evaluation import registry
from iecast.evaluation.config import EvalConfig
from iecast.evaluation.methods import Method, output_name
from iecast.evaluation.registry import InputFeatures
from iecast.evaluation.report import write_text
from iecast.evaluation.stats import mean_ci95
from iecast.images import fit_within, load_image, pil_to_tensor, save_image, tensor_to_pil


def method_settings(method: Method, config: EvalConfig) -> dict:
    """What the cached outputs of a method depend on; a change invalidates them."""
    settings = {"spec_kind": method.spec.kind, "target": method.spec.target, "size": config.size,
                "description": {k: v for k, v in method.description.items() if k not in ("weights",)}}
    if config.alphas is not None and method.alpha is not None:
        settings["alpha"] = method.alpha  # only in sweeps, so single-strength caches of earlier runs stay valid
    return settings


def relative_path(path: Path, root: Path) -> str:
    """`path` relative to `root`, with forward slashes (as the reports link files)."""
    return Path(os.path.relpath(path, root)).as_posix()


@torch.no_grad()
def pair_metrics(output: torch.Tensor, content: torch.Tensor, content_name: str, style: torch.Tensor, style_name: str,
                 feats: InputFeatures) -> dict[str, float]:
    """Every per-pair number, one per entry of `registry.PAIR_METRICS` in its order (losses against
    content/style, SSIM, perceptual distance to the content), the output first resized to the content's size."""
    if output.shape[-2:] != content.shape[-2:]:
        output = F.interpolate(output, size=content.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
    pair = registry.Pair(output, content, content_name, style, style_name, feats)
    return {m.column(feats.distance.name): m.compute(pair) for m in registry.PAIR_METRICS.values()}


def read_json(path: Path) -> dict:
    """A JSON file's object, or {} when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


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
               inputs: dict[str, dict[str, torch.Tensor]], precomputed: dict, feats: InputFeatures, bar) -> dict:
    """Stylize every pair with one method (outputs cached in `out/<label>/`), measure each output and
    return the method's report entry (per-pair metrics and their means with 95% intervals)."""
    folder = out / m.label
    if config.overwrite and (folder / "method.json").is_file():
        shutil.rmtree(folder)  # a folder this harness made (it holds method.json)
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "method.json", json.dumps({"spec": m.spec.spec, "settings": method_settings(m, config)}, indent=2))
    timings = {name: seconds for name, seconds in read_json(folder / "timings.json").items()
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
            pairs.append({"content": c.stem, "style": s.stem, "output": relative_path(output_path, out),
                          "metrics": values, "seconds": timings.get(output_path.name)})
            bar.update(1)
    if m.spec.kind != "folder":
        write_text(folder / "timings.json", json.dumps(timings, indent=1))
    summary = {k: mean_ci95([p["metrics"][k] for p in pairs]) for k in pairs[0]["metrics"]}
    seconds = [p["seconds"] for p in pairs if p["seconds"] is not None]
    summary["seconds"] = mean_ci95(seconds)
    return {"label": m.label, "kind": m.spec.kind, "spec": m.spec.spec, "curve": m.curve,
            "alpha": m.alpha, "description": m.description, "pairs": pairs, "summary": summary}
