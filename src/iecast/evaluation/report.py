"""The evaluation report files: report.json's schema, report.md and index.html (an offline image grid)."""
from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path
from urllib.parse import quote

from iecast.evaluation import registry, tradeoff

REPORT_FORMAT = "iecast-eval-report/3"
HTML_VIDEO_FRAMES = 6
VIDEO_RATIOS = ("ratio", "warping_ratio")  # per-clip stability measures, each a ratio to the raw clip's own value


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _number_schema() -> dict:
    return {"type": ["number", "null"]}


def _summary_schema() -> dict:
    return {"type": "object", "required": ["mean", "ci95", "n"], "properties": {
        "mean": _number_schema(),
        "ci95": {"oneOf": [{"type": "null"}, {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}]},
        "n": {"type": "integer", "minimum": 0}}}


REPORT_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "iecast evaluation report",
    "type": "object",
    "required": ["format", "iecast_version", "created", "settings", "metrics", "contents", "styles", "methods", "videos",
                 "tradeoff", "notes"],
    "properties": {
        "format": {"const": REPORT_FORMAT},
        "iecast_version": {"type": "string"},
        "created": {"type": "string"},
        "settings": {"type": "object", "required": ["contents", "styles", "size", "encoder", "judge", "alphas", "perceptual"],
                     "properties": {
                         "judge": {"type": "object", "required": ["encoder", "choice", "trained_with", "favours", "reason"],
                                   "properties": {"choice": {"enum": ["auto", "forced"]},
                                                  "trained_with": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
                                                  "favours": {"type": "array", "items": {"type": "string"}}}},
                         "alphas": {"oneOf": [{"type": "null"}, {"type": "array", "minItems": 1, "items": {"type": "number"}}]}}},
        "metrics": {"type": "object", "additionalProperties": {"type": "string"}},
        "contents": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["name", "source", "image"],
                                                                 "properties": {"name": {"type": "string"}, "image": {"type": "string"}}}},
        "styles": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["name", "source", "image"]}},
        "methods": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["label", "kind", "spec", "curve", "alpha", "description", "pairs", "summary", "art_fid"],
            "properties": {
                "label": {"type": "string", "pattern": "^[A-Za-z0-9._-]+$"},
                "kind": {"enum": ["iecast", "official", "gatys", "stlite", "folder"]},
                "curve": {"type": "string", "pattern": "^[A-Za-z0-9._-]+$"},
                "alpha": {"oneOf": [{"type": "null"}, {"type": "number", "minimum": 0, "maximum": 1}]},
                "pairs": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["content", "style", "output", "metrics", "seconds"],
                    "properties": {"metrics": {"type": "object", "required": registry.fixed_names(),
                                               "additionalProperties": {"type": "number"}},
                                   "seconds": _number_schema()}}},
                "summary": {"type": "object", "additionalProperties": _summary_schema()},
                "art_fid": {"type": "object", "required": ["available"]},
                "videos": {"oneOf": [{"type": "null"}, {"type": "array", "items": {"type": "object", "required": [
                    "name", "frames", "perceptual_mean", "perceptual_raw", "ratio", "warping_error", "warping_ratio"]}}]},
                "video_summary": {"oneOf": [{"type": "null"}, {"type": "object", "required": ["ratio", "warping_ratio"],
                                                               "additionalProperties": _summary_schema()}]},
                "paired": {"oneOf": [{"type": "null"}, {"type": "object", "required": ["against", "summary", "video_summary"], "properties": {
                    "against": {"type": "string"},
                    "summary": {"type": "object", "additionalProperties": _summary_schema()},
                    "video_summary": {"oneOf": [{"type": "null"}, {"type": "object", "additionalProperties": _summary_schema()}]}}}]},
            }}},
        "videos": {"type": "array", "items": {"type": "object", "required": ["name", "source", "frames", "style", "raw", "distance"]}},
        "tradeoff": tradeoff.TRADEOFF_SCHEMA,
        "notes": {"type": "array", "items": {"type": "string"}},
    },
}


def _fmt(summary: dict, digits: int = 4, signed: bool = False) -> str:
    if summary["mean"] is None:
        return "-"
    text = f"{summary['mean']:{'+' if signed else ''}.{digits}g}"
    if summary["ci95"] is not None:
        text += f" ± {(summary['ci95'][1] - summary['ci95'][0]) / 2:.{max(digits - 1, 1)}g}"
    return text


def _metric_columns(report: dict) -> list[str]:
    return [k for k in report["methods"][0]["summary"] if k != "seconds"] + ["seconds"]


def _arrow(name: str, report: dict) -> str:
    """The arrow after a column's name (down: lower is better), from the metric registry; none when unknown."""
    lower = {**registry.directions(report["settings"]["perceptual"]["name"]), "seconds": True}.get(name)
    return "" if lower is None else " ↓" if lower else " ↑"


def _video_rows(report: dict) -> list[tuple[str, list[list[str]]]]:
    """Per ratio (adjacent distance, warping error): a header and one row per method, cells as text."""
    names = [clip["name"] for clip in report["videos"]]
    tables = []
    for key, title in (("ratio", "adjacent-frame distance, ratio to raw"), ("warping_ratio", "warping error, ratio to raw")):
        rows = []
        for m in report["methods"]:
            if m.get("videos"):
                cells = ["-" if clip[key] is None else f"{clip[key]:.3g}" for clip in m["videos"]]
                rows.append([m["label"], *cells, _fmt(m["video_summary"][key], 3)])
        tables.append((title, [["method", *names, "mean ± 95%"], *rows]))
    return tables


def _raw_clip_rows(report: dict) -> list[list[str]]:
    """Header and one row per clip: the raw clip's own adjacent distance and warping error (the floors)."""
    return [["clip", "frames", "raw adjacent distance", "raw warping error"],
            *([c["name"], str(c["frames"]), f"{c['raw']['perceptual_mean']:.4g}", f"{c['raw']['warping_error']:.4g}"]
              for c in report["videos"])]


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table's lines from a header and rows of cell text."""
    return ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"] + ["| " + " | ".join(row) + " |" for row in rows]


def _html_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """An HTML table's parts from a header and rows of cell text (escaped here)."""
    esc = html.escape
    return (["<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
            + ["<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in rows] + ["</table>"])


def _paired_rows(report: dict) -> list[list[str]]:
    """Header and one row per compared method: the paired differences to the first method, as text."""
    compared = [m for m in report["methods"] if m.get("paired")]
    if not compared:
        return []
    columns = list(compared[0]["paired"]["summary"])
    video_keys = VIDEO_RATIOS if any(m["paired"]["video_summary"] for m in compared) else ()
    several = len({m["paired"]["against"] for m in compared}) > 1  # a sweep: each entry against its own reference
    header = ["method", *(["minus"] if several else []), *(f"{c}{_arrow(c, report)}" for c in columns),
              *(f"video {k.replace('_', ' ')} ↓" for k in video_keys)]
    rows = [[m["label"], *([m["paired"]["against"]] if several else []),
             *(_fmt(m["paired"]["summary"][c], 3, signed=True) for c in columns),
             *(_fmt(m["paired"]["video_summary"][k], 3, signed=True) if m["paired"]["video_summary"] else "-" for k in video_keys)]
            for m in compared]
    return [header, *rows]


def _paired_caption(report: dict) -> str:
    reference = report["methods"][0]["label"]
    againsts = {m["paired"]["against"] for m in report["methods"] if m.get("paired")}
    if len(againsts) > 1:
        curve = report["methods"][0].get("curve", reference)
        return (f"Paired differences to `{curve}`: each entry minus `{curve}`'s entry at the same alpha/strength value "
                f"(column \"minus\"; `{reference}` where it has none) on the same pairs (and clips), mean ± 95% half-width. "
                "An interval that excludes 0 is a difference on these pairs; the arrows say which sign is better.")
    return (f"Paired differences to `{reference}`: each method minus `{reference}` on the same pairs (and clips), "
            "mean ± 95% half-width. An interval that excludes 0 is a difference on these pairs; the arrows say "
            "which sign is better.")


def _markdown_video(report: dict) -> list[str]:
    if not report["videos"]:
        return []
    first = report["videos"][0]
    lines = ["", f"## Video stability ({len(report['videos'])} clip(s), up to {max(c['frames'] for c in report['videos'])} frames each, "
             f"style `{Path(first['style']).name}`)", "",
             f"Mean `{first['distance']}` distance between adjacent frames and short-term warping error (Farneback "
             "flow on the raw frames, occlusions masked), each as a ratio to the raw clip's own value (the floor; lower "
             "is more stable). The interval is over clips.", ""]
    header, *rows = _raw_clip_rows(report)
    lines += _markdown_table(header, rows)
    for title, (header, *rows) in _video_rows(report):
        lines += ["", f"{title} ↓", ""] + _markdown_table(header, rows)
    return lines


def _html_video(report: dict) -> list[str]:
    esc = html.escape
    if not report["videos"]:
        return []
    header, *rows = _raw_clip_rows(report)
    parts = ["<h2>Video stability</h2>", *_html_table(header, rows)]
    for title, (header, *rows) in _video_rows(report):
        parts.append(f"<p>{esc(title)} &darr;</p>")
        parts += _html_table(header, rows)
    return parts


def markdown_report(report: dict) -> str:
    """The headline tables: per-method means with 95% interval half-widths, video stability, notes."""
    columns = _metric_columns(report)
    settings = report["settings"]
    lines = ["# iecast evaluation", "",
             f"{len(report['contents'])} contents x {len(report['styles'])} styles, longer side <= {settings['size']} px; "
             f"encoder `{settings['encoder']}`; perceptual distance `{settings['perceptual']['name']}`. "
             f"Values are means ± 95% interval half-width over pairs. Made by iecast {report['iecast_version']} on {report['created']}.", "",
             f"Judge: {settings['judge']['reason']}.", "",
             "| method | " + " | ".join(f"{c}{_arrow(c, report)}" for c in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for m in report["methods"]:
        lines.append(f"| {m['label']} | " + " | ".join(_fmt(m["summary"][c]) for c in columns) + " |")
    lines += ["", "| method | ArtFID | FID |", "|---|---|---|"]
    for m in report["methods"]:
        a = m["art_fid"]
        lines.append(f"| {m['label']} | {a['art_fid']:.4g} | {a['fid']:.4g} |" if a["available"] else f"| {m['label']} | n/a | n/a |")
    paired = _paired_rows(report)
    if paired:
        header, *rows = paired
        lines += ["", _paired_caption(report), ""] + _markdown_table(header, rows)
    lines += tradeoff.markdown_section(report.get("tradeoff"))
    lines += _markdown_video(report)
    lines += ["", "## Methods", ""]
    for m in report["methods"]:
        desc = ", ".join(f"{k}={v}" for k, v in m["description"].items() if k not in ("sha256",))
        lines.append(f"- `{m['label']}` ({m['spec']}): {desc}")
    lines += ["", "## Metrics", ""] + [f"- `{k}`: {v}" for k, v in report["metrics"].items()]
    if report["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"


def _img(src: str, alt: str, title: str = "") -> str:
    return f'<img src="{html.escape(quote(src))}" alt="{html.escape(alt)}" title="{html.escape(title or alt)}" loading="lazy">'


def _code_spans(text: str) -> str:
    """Escape text for HTML, turning Markdown `code` spans into <code> elements."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text))


def html_report(report: dict) -> str:
    """A self-contained page (no scripts, no network): summary table, then one grid per method."""
    esc = html.escape
    columns = _metric_columns(report)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', "<title>iecast evaluation</title>",
             "<style>body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:center;font-size:13px}"
             ".grid img{width:160px;height:auto;display:block}.grid td{padding:2px;vertical-align:middle}"
             ".frames img{width:160px}</style>", "</head><body>", "<h1>iecast evaluation</h1>",
             f"<p>{len(report['contents'])} contents &times; {len(report['styles'])} styles, longer side &le; "
             f"{esc(str(report['settings']['size']))} px; encoder <code>{esc(report['settings']['encoder'])}</code>; perceptual distance "
             f"<code>{esc(report['settings']['perceptual']['name'])}</code>. Means &plusmn; 95% interval half-width.</p>",
             f"<p>Judge: {_code_spans(report['settings']['judge']['reason'])}.</p>",
             "<table><tr><th>method</th>" + "".join(f"<th>{esc(c + _arrow(c, report))}</th>" for c in columns) + "</tr>"]
    for m in report["methods"]:
        parts.append(f"<tr><td>{esc(m['label'])}</td>" + "".join(f"<td>{esc(_fmt(m['summary'][c]))}</td>" for c in columns) + "</tr>")
    parts.append("</table>")
    paired = _paired_rows(report)
    if paired:
        header, *rows = paired
        parts.append(f"<p>{esc(_paired_caption(report))}</p>")
        parts += _html_table(header, rows)
    parts += tradeoff.html_section(report.get("tradeoff"))
    parts += _html_video(report)
    for m in report["methods"]:
        outputs = {(p["content"], p["style"]): p for p in m["pairs"]}
        parts.append(f"<h2>{esc(m['label'])}</h2><p><code>{esc(m['spec'])}</code></p><table class=\"grid\"><tr><th></th>")
        parts += [f"<th>{_img(s['image'], s['name'])}</th>" for s in report["styles"]]
        parts.append("</tr>")
        for c in report["contents"]:
            parts.append(f"<tr><th>{_img(c['image'], c['name'])}</th>")
            for s in report["styles"]:
                p = outputs[(c["name"], s["name"])]
                tip = ", ".join(f"{k}={v:.3g}" for k, v in p["metrics"].items())
                alt = f"{c['name']} x {s['name']}"
                parts.append(f"<td>{_img(p['output'], alt, tip)}</td>")
            parts.append("</tr>")
        parts.append("</table>")
        for clip in m.get("videos") or []:
            parts.append(f"<p>video {esc(clip['name'])}, first frames:</p><div class=\"frames\">"
                         + "".join(_img(f, f"{m['label']} {clip['name']} frame {i + 1}") for i, f in enumerate(clip["frames"][:HTML_VIDEO_FRAMES]))
                         + "</div>")
    if report["notes"]:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in report["notes"]) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_reports(report: dict, out: Path) -> dict[str, Path]:
    """Write report.json (validated against REPORT_SCHEMA when jsonschema is installed), report.md, index.html."""
    try:
        import jsonschema
    except ImportError:
        jsonschema = None
    if jsonschema is not None:
        jsonschema.validate(report, REPORT_SCHEMA)
    paths = {"json": out / "report.json", "markdown": out / "report.md", "html": out / "index.html"}
    write_text(paths["json"], json.dumps(report, indent=1, allow_nan=False))
    write_text(paths["markdown"], markdown_report(report))
    write_text(paths["html"], html_report(report))
    return paths
