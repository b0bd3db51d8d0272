"""Images per second of `Stylizer.stylize_batch` for many same-size contents with one prepared style, per batch size.

The network is random-init (speed does not depend on trained values), the default encoder; the
contents are `--images` random square images of `--size` px, the style a random 512x512 image
prepared once (as `iecast stylize` does for a folder). Each batch size stylizes all the contents;
the batch sizes are interleaved over `--rounds` rounds, so background load on a shared machine
hits every one alike, and the median round is reported. One untimed warm-up call per batch size
comes first. The CPU flags that decide bf16 (`amx_bf16`, `avx512_bf16`), or the GPU's name, are printed.

    .venv/bin/python benchmarks/throughput_benchmark.py                          # cpu, 256 px, batches 1 2 4
    .venv/bin/python benchmarks/throughput_benchmark.py --size 512 --batch-sizes 1 4 8 --rounds 5
    python benchmarks/throughput_benchmark.py --device cuda --images 32 --batch-sizes 1 4 8 16
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stylize_benchmark import STYLE_SIZE, cpu_flags, random_network  # noqa: E402


def timed(run, device: torch.device) -> float:
    """Wall time of one call, waiting for the device to finish."""
    start = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--size", type=int, default=256, help="content side in pixels (square)")
    parser.add_argument("--images", type=int, default=8, help="contents per round and batch size")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", default="auto", help="auto, fp32, bf16 or fp16")
    args = parser.parse_args()

    from iecast.inference.options import StylizeOptions
    from iecast.inference.stylizer import Stylizer

    device = torch.device(args.device)
    stylizer = Stylizer(random_network(), device=device, precision=args.precision)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_flags()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {where}, load average "
          f"{os.getloadavg()[0]:.1f}; {args.images} contents of {args.size}x{args.size}, style "
          f"{STYLE_SIZE}x{STYLE_SIZE} prepared once, precision {args.precision} ({stylizer.compute_precision})", flush=True)
    g = torch.Generator().manual_seed(0)
    contents = [torch.rand(1, 3, args.size, args.size, generator=g).to(device) for _ in range(args.images)]
    style = stylizer.prepare_style(torch.rand(1, 3, STYLE_SIZE, STYLE_SIZE, generator=g).to(device))
    options = StylizeOptions()
    runs = {b: (lambda b=b: stylizer.stylize_batch(contents, style, options, batch_size=b)) for b in args.batch_sizes}
    for b, run in runs.items():  # warm-up: allocator, kernel choice, (GPU) cuDNN autotuning
        stylizer.stylize_batch(contents[:b], style, options, batch_size=b)
    rates: dict[int, list[float]] = {b: [] for b in args.batch_sizes}
    for r in range(args.rounds):
        for b, run in runs.items():
            seconds = timed(run, device)
            rates[b].append(args.images / seconds)
            print(f"  round {r + 1} batch {b}: {seconds:.2f} s, {rates[b][-1]:.2f} images/s", flush=True)
    base = statistics.median(rates[args.batch_sizes[0]])
    print(f"\n| batch size | images/s (median of {args.rounds}) | min-max | vs batch {args.batch_sizes[0]} |")
    print("|---|---|---|---|")
    for b, values in rates.items():
        median = statistics.median(values)
        print(f"| {b} | {median:.2f} | {min(values):.2f}-{max(values):.2f} | {median / base:.2f}x |")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
