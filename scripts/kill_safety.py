"""Kill a small training run with SIGKILL at random moments and resume it each time.

Checks after every kill: every checkpoint on disk loads, the newest one is at most one
checkpoint interval behind the last logged iteration, and the next start resumes from it.
Some kills are aimed at checkpoint writes (fired as soon as a temporary file appears).

    python scripts/kill_safety.py --kills 20 --data ../shared/data
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from iecast.training.checkpoints import list_checkpoints, read_checkpoint


def last_logged_iteration(log: Path) -> int:
    best = 0
    if log.exists():
        for line in log.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # a line cut by the kill
                continue
            if "total" in entry:
                best = max(best, entry["iteration"])
    return best


def log_text(out: Path) -> str:
    log = out / "log.jsonl"
    return log.read_text() if log.exists() else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--interval", type=int, default=2, help="checkpoint every N iterations")
    parser.add_argument("--max-wait", type=float, default=40.0, help="longest random delay before a kill (s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="iecast-kill-"))
    for pool in ("content", "style"):
        (work / pool).mkdir()
        for src in sorted((args.data / pool).glob("*.jpg"))[:6]:
            shutil.copy(src, work / pool / src.name)
    out = work / "run"

    def command(iterations: int) -> list[str]:
        return [sys.executable, "-m", "iecast.cli", "train", "--preset", "cpu-small", "--content", str(work / "content"),
                "--style", str(work / "style"), "--out", str(out), "--iterations", str(iterations), "--resume", "auto",
                f"checkpoint_every={args.interval}", "log_every=1", "image_every=1000", "workers=0", "tensorboard=false"]

    cmd = command(100000)
    lost, resumed_ok, aimed = [], 0, 0
    for k in range(args.kills):
        before = list_checkpoints(out)
        starts_before = log_text(out).count('"event": "start"')
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while proc.poll() is None and log_text(out).count('"event": "start"') == starts_before:
            time.sleep(0.05)  # start-up (imports, weights) is not what this tests
        # every third kill waits for a checkpoint write to begin (after this life saved once)
        aim = k % 3 == 2
        first = read_checkpoint(before[-1])["iteration"] if before else 0
        deadline = time.time() + (600 if aim else rng.uniform(1, args.max_wait))
        while time.time() < deadline and proc.poll() is None:
            saved_once = any(int(p.stem[5:]) > first for p in list_checkpoints(out))
            if aim and saved_once and any(p.name.endswith(".tmp") for p in (out / "checkpoints").glob(".*")):
                aimed += 1
                break
            time.sleep(0.002 if aim else 0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stderr = proc.stderr.read().decode(errors="replace")
        if "Traceback" in stderr:
            raise SystemExit(f"kill {k}: the run failed on its own:\n{stderr[-2000:]}")
        ckpts = list_checkpoints(out)
        for path in ckpts:
            read_checkpoint(path)  # raises if any checkpoint is unreadable
        newest = read_checkpoint(ckpts[-1])["iteration"] if ckpts else 0
        logged = last_logged_iteration(out / "log.jsonl")
        lost.append(logged - newest)
        if lost[-1] > args.interval:
            raise SystemExit(f"kill {k}: lost {lost[-1]} iterations (> interval {args.interval})")
        if before:
            starts = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines() if '"event": "start"' in l]
            resumed_ok += int(starts[-1]["resumed_from"] == str(before[-1]))
        leftovers = [p.name for p in (out / "checkpoints").glob(".*.tmp")] if (out / "checkpoints").exists() else []
        print(f"kill {k + 1:2d}: {'aimed at a write' if aim else 'random':16s} checkpoints {len(ckpts)}, newest it {newest}, "
              f"last logged it {logged}, lost {lost[-1]}, stale temp files {len(leftovers)}", flush=True)
    final = subprocess.run(command(last_logged_iteration(out / "log.jsonl") + 1), capture_output=True, text=True)
    print(f"{args.kills} kills ({aimed} during checkpoint writes): every checkpoint readable; "
          f"lost iterations max {max(lost)}, mean {sum(lost) / len(lost):.2f} (interval {args.interval}); "
          f"resumed from the newest checkpoint {resumed_ok} times; final resume exit status {final.returncode}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
