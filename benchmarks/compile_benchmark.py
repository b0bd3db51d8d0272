"""`Stylizer(compile=True)` against eager on the default model, interleaved in one process.

Prints the first compiled call (it compiles), the largest output difference to eager, and then
`--rounds` timed calls of each; random content and style of `--size` pixels.

    .venv/bin/python benchmarks/compile_benchmark.py --precision bf16
    .venv/bin/python benchmarks/compile_benchmark.py --precision fp32 --size 1024
"""
from __future__ import annotations

import argparse
import time

import torch

from iecast.inference.stylizer import Stylizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, args.size, args.size, generator=g)
    style = torch.rand(1, 3, 512, 512, generator=g)
    eager = Stylizer.from_pretrained("default", device="cpu", precision=args.precision)
    compiled = Stylizer.from_pretrained("default", device="cpu", precision=args.precision, compile=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, precision {eager.compute_precision}, "
          f"content {args.size}x{args.size}, style 512x512", flush=True)
    start = time.perf_counter()
    out = compiled.stylize(content, style, style_size=None)
    print(f"first compiled call (compiles): {time.perf_counter() - start:.1f} s", flush=True)
    diff = (out - eager.stylize(content, style, style_size=None)).abs().max()
    print(f"largest difference to eager: {float(diff):.2e}", flush=True)
    for _ in range(args.rounds):
        for name, stylizer in (("eager", eager), ("compiled", compiled)):
            start = time.perf_counter()
            stylizer.stylize(content, style, style_size=None)
            print(f"{name:9s} {time.perf_counter() - start:.3f} s", flush=True)


if __name__ == "__main__":
    main()
