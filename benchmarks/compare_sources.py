"""Time `Stylizer.stylize` from several source trees in one run, interleaved, on the bundled samples.

Each tree's `src/` is imported in its own subprocess (made with, e.g., `git worktree add /tmp/old
HEAD~1` or `git archive HEAD~1 src | tar -x -C /tmp/old`), and the trees alternate, so machine
noise falls on all of them alike. Prints seconds per call and a hash and PSNR of each output
against the first tree's fp32 result.

    .venv/bin/python benchmarks/compare_sources.py /tmp/old . --size 512 --precision auto --rounds 2
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "iecast" / "assets" / "samples"

CHILD = r"""
import hashlib, json, sys, time
import numpy as np, torch
from PIL import Image
from iecast import Stylizer
size, precision, calls, content, style, save = sys.argv[1:7]
size, calls = int(size), int(calls)
def load(path):
    image = Image.open(path).convert("RGB").resize((size, size), Image.BICUBIC)
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255
stylizer = Stylizer.from_pretrained("default", device="cpu", precision=precision)
c, s = load(content), load(style)
out = stylizer.stylize(c, s)  # warm-up, and the output compared
times = []
for _ in range(calls):
    start = time.perf_counter(); stylizer.stylize(c, s); times.append(time.perf_counter() - start)
if save:
    torch.save(out, save)
print(json.dumps({"times": times, "sha256": hashlib.sha256(out.numpy().tobytes()).hexdigest()[:16]}))
"""


def run(tree: Path, size: int, precision: str, calls: int, save: str = "") -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    args = [sys.executable, "-c", CHILD, str(size), precision, str(calls),
            str(SAMPLES / "classic_cars.jpg"), str(SAMPLES / "starry_night.jpg"), save]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", type=Path, help="source trees (each has src/iecast)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--calls", type=int, default=3, help="timed calls per tree and round")
    args = parser.parse_args()
    import torch

    scratch = Path(os.environ.get("TMPDIR", "/tmp"))
    reference = scratch / "compare_sources_fp32.pt"
    run(args.trees[0], args.size, "fp32", 0, str(reference))
    ref = torch.load(reference)
    for round_ in range(args.rounds):
        for i, tree in enumerate(args.trees):
            out_path = scratch / f"compare_sources_{i}.pt"
            result = run(tree, args.size, args.precision, args.calls, str(out_path))
            mse = float(((torch.load(out_path) - ref) ** 2).mean())
            psnr = float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(1.0 / mse)).item()
            times = ", ".join(f"{t:.3f}" for t in result["times"])
            print(f"round {round_ + 1}  {tree}  {args.precision}  {times} s  sha {result['sha256']}  "
                  f"PSNR vs fp32 {psnr:.2f} dB", flush=True)


if __name__ == "__main__":
    main()
