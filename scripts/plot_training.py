"""Plot every loss term of a training run's log.jsonl (raw and 10-point moving average).

    python scripts/plot_training.py runs/default/log.jsonl -o docs/default_model/training_curves.png
    python scripts/plot_training.py runs/default/log.jsonl --check 300   # the "it learns" figures
    python scripts/plot_training.py --compare IEContraAST=runs/a/log.jsonl SANet=runs/b/log.jsonl --until 2190 -o cmp.png
    python scripts/plot_training.py docs/training/cpu_small_rms_log.jsonl.gz --check 5233   # committed logs are gzipped

`--compare` overlays several runs (one log each) on the terms they share, as 50-iteration
moving averages: runs with the same seed and data see the same batches, so the curves compare
directly.

`--check N` prints, per term, the mean over iterations 1-50 and over N-49..N (whatever the
run's log_every) and the change between them (the training issue's test: content and style
must fall by at least 20%).
"""
from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

TERMS = ("content", "style", "identity_pixel", "identity_feature", "contrastive_content", "contrastive_style",
         "adversarial", "discriminator", "total")


def read_lines(path: Path) -> list[str]:
    """A log's lines: a run's plain `log.jsonl`, or a gzip-compressed one (`docs/training/*.jsonl.gz`)."""
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return fh.read().splitlines()
    return path.read_text().splitlines()


def read_log(paths: list[Path]) -> list[dict]:
    """Loss entries of one or more logs (plain or .gz), later logs overriding repeated iterations (resumes)."""
    by_iteration: dict[int, dict] = {}
    for path in paths:
        for line in read_lines(path):
            entry = json.loads(line)
            if "total" in entry:
                by_iteration[entry["iteration"]] = entry
    return [by_iteration[i] for i in sorted(by_iteration)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("logs", type=Path, nargs="*")
    parser.add_argument("-o", "--out", type=Path, help="PNG of the curves")
    parser.add_argument("--check", type=int, metavar="N", help="print the means of iterations 1-50 vs N-49..N")
    parser.add_argument("--compare", nargs="+", metavar="LABEL=LOG", help="overlay these runs instead (needs -o)")
    parser.add_argument("--until", type=int, metavar="N", help="with --compare: only iterations up to N")
    args = parser.parse_args()
    if args.compare:
        if not args.out:
            parser.error("--compare needs -o")
        runs = {label: [e for e in read_log([Path(path)]) if args.until is None or e["iteration"] <= args.until]
                for label, _, path in (item.partition("=") for item in args.compare)}
        plot_compare(runs, args.out)
        return
    if not args.logs:
        parser.error("give a log, or --compare")
    entries = read_log(args.logs)
    if args.check:
        print_check(entries, args.check)
    if args.out:
        plot(entries, args.out)


def print_check(entries: list[dict], upto: int, window: int = 50) -> None:
    """Mean of each term over iterations 1..window and upto-window+1..upto (the logged ones)."""
    first = [e for e in entries if e["iteration"] <= window]
    last = [e for e in entries if upto - window < e["iteration"] <= upto]
    print(f"iterations {first[0]['iteration']}-{first[-1]['iteration']} vs {last[0]['iteration']}-{last[-1]['iteration']}")
    for term in TERMS:
        if all(term in e for e in first + last):
            a = sum(e[term] for e in first) / len(first)
            b = sum(e[term] for e in last) / len(last)
            print(f"  {term:20s} {a:10.4f} -> {b:10.4f}  ({100 * (b - a) / abs(a):+.1f}%)")


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series(entries: list[dict], term: str) -> tuple[list[int], list[float]]:
    """Iterations and values of one term, where it was logged."""
    return [e["iteration"] for e in entries if term in e], [e[term] for e in entries if term in e]


def _moving_average(xs: list[int], ys: list[float], k: int) -> tuple[list[int], list[float]]:
    """The k-point trailing mean, at the iterations where a full window ends."""
    return xs[k - 1:], [sum(ys[i - k + 1:i + 1]) / k for i in range(k - 1, len(ys))]


def _save(fig, out: Path) -> None:
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(out)


def plot(entries: list[dict], out: Path) -> None:
    plt = _pyplot()
    terms = [t for t in TERMS if any(t in e for e in entries)]
    cols = 3
    rows = -(-len(terms) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
    for ax, term in zip(axes.flat, terms):
        xs, ys = _series(entries, term)
        ax.plot(xs, ys, lw=0.8, alpha=0.5)
        k = 10
        if len(ys) >= k:
            ax.plot(*_moving_average(xs, ys, k), lw=1.6)
        ax.set_title(term, fontsize=10)
        ax.set_xlabel("iteration", fontsize=8)
    for ax in list(axes.flat)[len(terms):]:
        ax.axis("off")
    _save(fig, out)


def plot_compare(runs: dict[str, list[dict]], out: Path, window: int = 50) -> None:
    """The terms every run logs, one panel each, one moving-average line per run."""
    plt = _pyplot()
    terms = [t for t in TERMS if t != "total" and all(any(t in e for e in entries) for entries in runs.values())]
    fig, axes = plt.subplots(1, len(terms), figsize=(4 * len(terms), 3), squeeze=False)
    for ax, term in zip(axes.flat, terms):
        for label, entries in runs.items():
            xs, ys = _series(entries, term)
            ax.plot(*_moving_average(xs, ys, min(window, len(ys))), lw=1.4, label=label)
        ax.set_title(f"{term} ({window}-iteration mean)", fontsize=10)
        ax.set_xlabel("iteration", fontsize=8)
    axes.flat[0].legend(fontsize=8)
    _save(fig, out)


if __name__ == "__main__":
    main()
