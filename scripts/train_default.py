"""Train the default model and its two baselines side by side for a wall-clock budget, then
export all three at the same iteration count (the equal-budget comparison of issue #6).

The three runs share one machine (one GPU, or the CPU) as separate `iecast train` processes:

- `iecontraast`: the full method (release loss weights),
- `sanet`: the SANet ablation (adversarial and both contrastive weights 0),
- `adain`: the AdaIN baseline (`transform=adain`: content + style loss only).

The faster baselines are paused (SIGSTOP) whenever they lead IEContraAST by more than one
checkpoint interval, so the device's time goes where the iterations are needed. At the
deadline every run gets SIGTERM, which makes the trainer checkpoint and stop; a run that
fails before then (say, a non-finite loss in bf16) is resumed once in fp32. Then each run's
checkpoint at the largest iteration all three have is exported as fp16 safetensors, with the
discriminator and heads beside the IEContraAST one (`--init-from` continues from it).

    python scripts/train_default.py --content LIST --style LIST --out runs/default --minutes 7 \\
        --preset paper precision=bf16-mixed channels_last=true workers=4
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from iecast.training.checkpoints import export_checkpoint, list_checkpoints

RUNS = {
    "iecontraast": [],
    "sanet": ["loss_adversarial=0", "loss_contrastive_content=0", "loss_contrastive_style=0"],
    "adain": ["transform=adain"],
}
LEADER = "iecontraast"


def last_iteration(run_dir: Path) -> int:
    """The newest logged iteration of a run (0 before its first log line)."""
    log = run_dir / "log.jsonl"
    if not log.is_file():
        return 0
    lines = log.read_text().splitlines()
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line being written
            continue
        return int(row.get("iteration", 0))
    return 0


def checkpoint_iterations(run_dir: Path) -> dict[int, Path]:
    """Each saved checkpoint of a run by its iteration (`ckpt_<iteration>.pt`, see checkpoint_path)."""
    return {int(p.stem.split("_")[1]): p for p in list_checkpoints(run_dir)}


def start(name: str, args: argparse.Namespace, extra: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "iecast.cli", "train", "--content", *args.content, "--style", *args.style,
           "--out", str(args.out / name), "--resume", "auto", *(["--preset", args.preset] if args.preset else []),
           "iterations=10000000", f"checkpoint_every={args.every}", "keep_checkpoints=100000",
           *args.overrides, *RUNS[name], *extra]
    print(f"[{time.strftime('%H:%M:%S')}] start {name}: {' '.join(cmd[3:])}", flush=True)
    with open(args.out / f"{name}.stdout", "a") as log:  # the child keeps its own handle
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="settings for all three runs")
    parser.add_argument("--content", nargs="+", required=True)
    parser.add_argument("--style", nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True, help="one run folder per model, plus exports/")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--minutes", type=float, required=True, help="wall-clock budget of the training phase")
    parser.add_argument("--every", type=int, default=100, help="checkpoint interval (the export grid)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    deadline = time.monotonic() + args.minutes * 60
    procs = {name: start(name, args, []) for name in RUNS}
    retried, paused = set(), set()
    while time.monotonic() < deadline and any(p.poll() is None for p in procs.values()):
        time.sleep(2)
        lead = last_iteration(args.out / LEADER)
        for name, proc in procs.items():
            if proc.poll() is not None:
                if proc.returncode != 0 and name not in retried:  # e.g. a non-finite loss in reduced precision
                    retried.add(name)
                    paused.discard(name)
                    procs[name] = start(name, args, ["precision=32-true"])
                continue
            if name == LEADER:
                continue
            if procs[LEADER].poll() is not None:  # nothing left to keep pace with
                if name in paused:
                    proc.send_signal(signal.SIGCONT)
                    paused.discard(name)
                continue
            ahead = last_iteration(args.out / name) - lead > args.every
            if ahead and name not in paused:
                proc.send_signal(signal.SIGSTOP)
                paused.add(name)
            elif not ahead and name in paused:
                proc.send_signal(signal.SIGCONT)
                paused.discard(name)
        if int(time.monotonic()) % 30 < 2:
            print(f"[{time.strftime('%H:%M:%S')}] " + ", ".join(
                f"{n} {last_iteration(args.out / n)}{' (paused)' if n in paused else ''}" for n in RUNS), flush=True)
    for name, proc in procs.items():
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
    for name, proc in procs.items():
        try:
            proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
        print(f"{name}: exit {proc.returncode}, last logged iteration {last_iteration(args.out / name)}", flush=True)

    found = {name: checkpoint_iterations(args.out / name) for name in RUNS}
    common = set.intersection(*(set(f) for f in found.values()))
    if not common:
        sys.exit(f"no iteration has a checkpoint in all three runs: {({n: sorted(f)[-3:] for n, f in found.items()})}")
    iteration = max(common)
    exports = args.out / "exports"
    summary = {"iteration": iteration, "final": {n: max(f) for n, f in found.items()}, "retried_fp32": sorted(retried)}
    for name in RUNS:
        path = export_checkpoint(found[name][iteration], exports / f"{name}.safetensors", fp16=True,
                                 with_training_state=name == LEADER)
        summary[name] = str(path)
    (exports / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2), flush=True)


if __name__ == "__main__":
    main()
