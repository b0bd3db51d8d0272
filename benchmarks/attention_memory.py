"""Peak memory of one style-attention block: SDPA (ours) vs the naive softmax(F^T G) form.

The naive form (the authors' release) materialises the (content positions N x style
positions M) attention matrix, twice (scores and softmax). `StyleAttention` calls
`scaled_dot_product_attention` with q, k, v contiguous in their last dimension, so PyTorch
takes its blocked (flash) CPU kernel and never holds that matrix. Methods:

- `sdpa`: the whole `StyleAttention` block as shipped (mvn, 1x1 convs, attention, out_conv);
- `naive`: the same block written the release's way (bmm, softmax, bmm);
- `sdpa-noncontiguous`: the block with q, k, v passed as transposed views (last-dimension
  stride != 1), showing that SDPA then silently falls back to the plain, N x M path;
- `sdpa-core` / `naive-core`: only the attention step, on precomputed contiguous q, k, v.

Each measurement runs in a fresh subprocess: peak RSS (`ru_maxrss`) during the step minus the
RSS just before it (inputs and weights already allocated), so only the step's own working
memory counts. The whole-block figures also hold a few C x N feature maps (normalised
content, queries, attention output, out_conv output); compare them with the N x M column.
Linux only (/proc/self/statm).

    .venv/bin/python benchmarks/attention_memory.py                    # content 512, 1024, 1536 px
    .venv/bin/python benchmarks/attention_memory.py --sizes 2048 --style 512
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

METHODS = ("sdpa", "naive", "sdpa-noncontiguous", "sdpa-core", "naive-core")
STRIDE = 8  # relu4_1 is 1/8 of the image in each dimension


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def run_worker(method: str, content_px: int, style_px: int, channels: int, threads: int) -> dict:
    """Build one block and random relu4_1-sized features, then measure one forward (the whole
    block) or, for the `*-core` methods, only the attention step on precomputed q, k, v."""
    import torch
    import torch.nn.functional as F

    from iecast.models.functional import mean_variance_norm
    from iecast.models.transform import StyleAttention

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    block = StyleAttention(channels).eval()
    content = torch.randn(1, channels, content_px // STRIDE, content_px // STRIDE)
    style = torch.randn(1, channels, style_px // STRIDE, style_px // STRIDE)
    seen_strides: list[tuple[int, int, int]] = []
    real_sdpa = F.scaled_dot_product_attention

    def recording_sdpa(q, k, v, *args, **kwargs):
        seen_strides.append((q.stride(-1), k.stride(-1), v.stride(-1)))
        return real_sdpa(q, k, v, *args, **kwargs)

    def naive(c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        n, ch, h, w = c.shape
        queries = block.f(mean_variance_norm(c)).flatten(2)
        keys = block.g(mean_variance_norm(s)).flatten(2)
        values = block.h(s).flatten(2)
        attention = torch.softmax(torch.bmm(queries.transpose(1, 2), keys), dim=-1)
        return c + block.out_conv(torch.bmm(values, attention.transpose(1, 2)).view(n, ch, h, w))

    def noncontiguous(c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        n, ch, h, w = c.shape
        queries = block.f(mean_variance_norm(c)).flatten(2).transpose(1, 2).unsqueeze(1)
        keys = block.g(mean_variance_norm(s)).flatten(2).transpose(1, 2).unsqueeze(1)
        values = block.h(s).flatten(2).transpose(1, 2).unsqueeze(1)
        out = F.scaled_dot_product_attention(queries, keys, values, scale=1.0).squeeze(1)
        return c + block.out_conv(out.transpose(1, 2).reshape(n, ch, h, w))

    def qkv(c: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Random (1, 1, positions, C) queries, keys, values, contiguous in C as the block makes
        them; drawn directly so that setting up leaves no freed memory for the step to reuse."""
        n_c, n_s = c[0, 0].numel(), s[0, 0].numel()
        return (torch.randn(1, 1, n_c, channels) * 0.05, torch.randn(1, 1, n_s, channels) * 0.05,
                torch.randn(1, 1, n_s, channels))

    def sdpa_core(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, scale=1.0)

    def naive_core(q, k, v):
        return torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v

    whole_block = {"sdpa": block, "naive": naive, "sdpa-noncontiguous": noncontiguous}
    core = {"sdpa-core": sdpa_core, "naive-core": naive_core}
    with torch.no_grad():
        small = (content[..., :2, :2].contiguous(), style[..., :2, :2].contiguous())
        if method in core:
            forward, inputs = core[method], qkv(content, style)
            expected_shape = inputs[0].shape
            forward(*qkv(*small))  # load kernels
        else:
            forward, inputs, expected_shape = whole_block[method], (content, style), content.shape
            forward(*small)
        seen_strides.clear()
        F.scaled_dot_product_attention = recording_sdpa
        try:
            base, peak_before = current_rss_bytes(), peak_rss_bytes()
            start = time.perf_counter()
            out = forward(*inputs)
            seconds = time.perf_counter() - start
            peak_after = peak_rss_bytes()
        finally:
            F.scaled_dot_product_attention = real_sdpa
    assert out.shape == expected_shape
    n_content, n_style = content[0, 0].numel(), style[0, 0].numel()
    return {
        "method": method, "content_px": content_px, "style_px": style_px,
        "content_positions": n_content, "style_positions": n_style,
        "matrix_bytes": n_content * n_style * 4, "content_map_bytes": n_content * channels * 4,
        "peak_delta_bytes": peak_after - base, "setup_peak_exceeded": peak_after > peak_before,
        "seconds": seconds, "sdpa_last_dim_strides": seen_strides,
    }


def measure(method: str, content_px: int, style_px: int, channels: int, threads: int) -> dict:
    command = [sys.executable, __file__, "--worker", method, "--sizes", str(content_px), "--style", str(style_px),
               "--channels", str(channels), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker {method} at {content_px} px failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 1536], help="content sizes in px (square)")
    parser.add_argument("--style", type=int, default=512, help="style size in px (square)")
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.sizes[0], args.style, args.channels, args.threads)))
        return

    mib = 1024 ** 2
    print(f"one StyleAttention block, {args.channels} channels, style {args.style} px, {args.threads} threads; "
          f"memory = peak RSS during the block minus RSS before it; "
          f"N x M is the attention matrix the naive form holds (twice), C x N one content feature map")
    print(f"{'content':>8} {'N x M':>15} {'N x M fp32':>11} {'C x N fp32':>11} {'method':>19} {'peak extra':>11} {'time':>7}"
          "  sdpa last-dim strides (q, k, v)")
    for content_px in args.sizes:
        for method in args.methods:
            r = measure(method, content_px, args.style, args.channels, args.threads)
            peak = f"{r['peak_delta_bytes'] / mib:8.0f} MiB" if r["setup_peak_exceeded"] else "   <= setup"
            strides = sorted(set(map(tuple, r["sdpa_last_dim_strides"]))) or "-"
            print(f"{content_px:>6}px {r['content_positions']:>7} x {r['style_positions']:<5} {r['matrix_bytes'] / mib:7.0f} MiB "
                  f"{r['content_map_bytes'] / mib:7.0f} MiB {method:>19} {peak} {r['seconds']:6.1f}s  {strides}", flush=True)


if __name__ == "__main__":
    main()
