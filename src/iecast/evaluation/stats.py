"""The report's statistics: means with 95% intervals, and each method's paired difference to the reference."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from iecast.evaluation.report import VIDEO_RATIOS


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


def finite_or_none(value: float) -> float | None:
    """`value` as a float, or None when it is missing, infinite or NaN (JSON has neither)."""
    return float(value) if value is not None and math.isfinite(value) else None


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
