"""Seconds, kernel time and page faults per `Stylizer.stylize` call with and without
`iecast.hardware.keep_freed_memory()` (what `iecast eval` and `serve` turn on), in fresh processes,
interleaved: glibc otherwise maps each large tensor afresh and faults its pages in on every call.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/malloc_reuse.py --size 512 --calls 5 --rounds 3
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def worker(size: int, calls: int, keep_mb: int) -> dict:
    import torch

    from iecast.hardware import keep_freed_memory
    from iecast.inference.stylizer import Stylizer

    kept = keep_freed_memory(keep_mb)
    stylizer = Stylizer.from_pretrained("default")
    g = torch.Generator().manual_seed(size)
    content, style = torch.rand(1, 3, size, size, generator=g), torch.rand(1, 3, 512, 512, generator=g)
    stylizer.stylize(content, style, max_pixels=None)  # the first call faults everything in either way
    seconds, system, faults = [], [], []
    for _ in range(calls):
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        stylizer.stylize(content, style, max_pixels=None)
        seconds.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_SELF)
        system.append(after.ru_stime - before.ru_stime)
        faults.append(after.ru_minflt - before.ru_minflt)
    return {"kept": kept, "seconds": statistics.median(seconds), "system": statistics.median(system),
            "faults": statistics.median(faults), "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--calls", type=int, default=5, help="timed calls per process, after one warm-up")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep-mb", type=int, default=None, help="the kept block size (default: the command's)")
    parser.add_argument("--worker", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    from iecast.hardware import KEEP_FREED_MB

    keep_mb = args.keep_mb if args.keep_mb is not None else KEEP_FREED_MB
    print(f"{args.size}x{args.size} content, 512x512 style, median of {args.calls} calls per process")
    print("| round | malloc | seconds per call | kernel seconds | page faults | peak RSS |\n|---|---|---|---|---|---|")
    for round_ in range(1, args.rounds + 1):
        for label, mb in (("glibc default", 0), (f"kept up to {keep_mb} MB", keep_mb)):
            out = subprocess.run([sys.executable, __file__, "--worker", str(args.size), str(args.calls), str(mb)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.splitlines()[-1])
            print(f"| {round_} | {label} | {r['seconds']:.2f} | {r['system']:.2f} | {r['faults']:.0f} | "
                  f"{r['peak_rss_gb']:.2f} GB |", flush=True)


if __name__ == "__main__":
    main()
