"""Plot every loss term of a training run's log.jsonl (raw and 10-point moving average).

    python scripts/plot_training.py runs/default/log.jsonl -o docs/default_model/training_curves.png
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

TERMS = ("content", "style", "identity_pixel", "identity_feature", "contrastive_content", "contrastive_style",
         "adversarial", "discriminator", "total")


def read_log(paths: list[Path]) -> list[dict]:
    """Loss entries of one or more logs, later logs overriding repeated iterations (resumes)."""
    by_iteration: dict[int, dict] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if "total" in entry:
                by_iteration[entry["iteration"]] = entry
    return [by_iteration[i] for i in sorted(by_iteration)]


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("logs", type=Path, nargs="+")
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    entries = read_log(args.logs)
    terms = [t for t in TERMS if any(t in e for e in entries)]
    cols = 3
    rows = -(-len(terms) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
    for ax, term in zip(axes.flat, terms):
        xs = [e["iteration"] for e in entries if term in e]
        ys = [e[term] for e in entries if term in e]
        ax.plot(xs, ys, lw=0.8, alpha=0.5)
        k = 10
        if len(ys) >= k:
            ax.plot(xs[k - 1:], [sum(ys[i - k + 1:i + 1]) / k for i in range(k - 1, len(ys))], lw=1.6)
        ax.set_title(term, fontsize=10)
        ax.set_xlabel("iteration", fontsize=8)
    for ax in list(axes.flat)[len(terms):]:
        ax.axis("off")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(args.out)


if __name__ == "__main__":
    main()
