"""Peak memory of `iecast stylize` at the default limits: one row per content size and precision.

Each run is the CLI in a fresh process, with the default options apart from `--precision`,
on a synthetic smooth-gradient JPEG of the given size and the bundled Great Wave as style.
It runs under `/usr/bin/time -v` (peak RSS, seconds) and, with `--as-limit`, under
`prlimit --as=N` (address space, which with torch's allocator and thread stacks exceeds RSS).
Prints a Markdown table with the CPU's bf16 flags; Linux only. Not a test: a run can take minutes.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/memory_limits.py --sizes 2048x2048 4096x2560
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/memory_limits.py --sizes 8192x4096 --precision fp32 auto --as-limit 4000000000
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
STYLE = ROOT / "src" / "iecast" / "assets" / "samples" / "great_wave.jpg"
# runs the CLI and, at exit, prints the process's peak address space (what `prlimit --as` limits)
PEAK_WRAPPER = ("import atexit, runpy, sys, re\n"
                "atexit.register(lambda: print('VmPeak', re.search(r'VmPeak:\\s+(\\d+)', open('/proc/self/status').read())"
                ".group(1), file=sys.stderr))\n"
                "sys.argv = ['iecast'] + sys.argv[1:]\n"
                "runpy.run_module('iecast.cli', run_name='__main__')\n")
CPU_FLAGS = ("amx_bf16", "avx512_bf16", "avx512f", "avx2")


def cpu_flags() -> str:
    try:
        words = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    return " ".join(f for f in CPU_FLAGS if f in words) or "none of " + ", ".join(CPU_FLAGS)


def gradient_image(width: int, height: int, path: Path) -> None:
    """A smooth colour gradient, built row band by row band so the script itself stays small."""
    with Image.new("RGB", (width, height)) as image:
        xs = np.linspace(0, 255, width, dtype=np.float32)
        for top in range(0, height, 1024):
            ys = np.linspace(top, min(top + 1024, height) - 1, min(1024, height - top), dtype=np.float32)[:, None]
            ys = ys * 255 / max(1, height - 1)
            band = np.stack([np.broadcast_to(xs, (len(ys), width)), np.broadcast_to(ys, (len(ys), width)),
                             (xs[None, :] + ys) / 2], axis=-1)
            image.paste(Image.fromarray(band.astype(np.uint8), "RGB"), (0, top))
        image.save(path, quality=90)


def run_one(content: Path, precision: str, as_limit: int | None, out_dir: Path, extra: list[str]) -> dict:
    cli = ["stylize", "-c", str(content), "-s", str(STYLE), "-o", str(out_dir / f"out_{precision}{content.suffix}"),
           "--precision", precision, "--quiet", *extra]
    return measure([sys.executable, "-c", PEAK_WRAPPER, *cli], as_limit)


def measure(command: list[str], as_limit: int | None) -> dict:
    """Run `command` (which prints `VmPeak N` on stderr) under /usr/bin/time -v and, with `as_limit`,
    prlimit --as; its exit status, peak RSS and address space (GB), seconds and last `iecast` line."""
    command = ["/usr/bin/time", "-v", *command]
    if as_limit:
        command = ["prlimit", f"--as={as_limit}", *command]
    proc = subprocess.run(command, capture_output=True, text=True)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    vm_peak = re.search(r"^VmPeak (\d+)", proc.stderr, re.M)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", proc.stderr)
    seconds = sum(float(part) * 60 ** i for i, part in enumerate(reversed(wall.group(1).split(":")))) if wall else float("nan")
    lines = [line for line in proc.stderr.splitlines() if line.startswith("iecast")]
    return {"rc": proc.returncode, "rss_gb": int(rss.group(1)) * 1024 / 1e9 if rss else float("nan"),
            "vm_gb": int(vm_peak.group(1)) * 1024 / 1e9 if vm_peak else float("nan"),
            "seconds": seconds, "message": lines[-1] if lines else ""}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["2048x2048"], metavar="WxH")
    ap.add_argument("--precision", nargs="+", default=["fp32"], choices=["auto", "fp32", "bf16"])
    ap.add_argument("--as-limit", type=int, default=None, metavar="BYTES", help="run under prlimit --as=BYTES")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="further `iecast stylize` options")
    args = ap.parse_args()
    env_threads = os.environ.get("OMP_NUM_THREADS", "all")
    limit = f"prlimit --as={args.as_limit}" if args.as_limit else "no limit"
    print(f"CPU flags: {cpu_flags()}; OMP_NUM_THREADS={env_threads}; {limit}; style {STYLE.name}")
    print("| content | megapixels | precision | peak RSS | peak address space | result | seconds |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            width, height = (int(v) for v in size.lower().split("x"))
            suffix = ".png" if max(width, height) > 65500 else ".jpg"  # JPEG sides stop at 65535 (input and output)
            content = Path(tmp) / f"gradient_{width}x{height}{suffix}"
            gradient_image(width, height, content)
            for precision in args.precision:
                r = run_one(content, precision, args.as_limit, Path(tmp), args.extra)
                result = "ok" if r["rc"] == 0 else f"exit {r['rc']}: {r['message'][:120]}"
                print(f"| {width}x{height} | {width * height / 1e6:.1f} | {precision} | {r['rss_gb']:.2f} GB | {r['vm_gb']:.2f} GB | {result} "
                      f"| {r['seconds']:.0f} |", flush=True)
                (Path(tmp) / f"out_{precision}{suffix}").unlink(missing_ok=True)
            content.unlink()


if __name__ == "__main__":
    main()
