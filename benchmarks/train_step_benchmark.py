"""Seconds per training iteration: the release's step structure vs iecast's tuned step.

Variants (each timed in its own subprocess, interleaved, batch 2h = 8):
- release-fp32-nchw: the authors' structure: every image of the 2h pairs encoded (duplicates
  included), identity passes over the whole 2h batch, D run twice in the D step and its weight
  gradients computed in the G step, statistics by `torch.var`, the decoder's upsample -> pad -> conv
  at full resolution, fp32, NCHW, the default allocator.
- iecast-fp32: the trainer's step (`IEContraASTModel`, `discriminator_step`, `adversarial_term`):
  each distinct image encoded once; the identity images decoded and encoded in the stylizations'
  pass; one D pass per D step; no D weight gradients in the G step; each upsample -> pad -> conv
  of the decoder at the lower resolution (`upsample_reflect_conv3x3`); fp32 NCHW, with tcmalloc
  preloaded when installed.
- iecast-bf16-cl: the same plus channels_last and bf16 autocast.
Also prints achieved FLOP/s (FlopCounterMode count of one step / time) against this machine's
measured matmul peak in the same dtype. Shared or virtual machines drift by ~10% between runs of
the same code, so `--rounds N` runs every variant N times, interleaved, and reports each one's
best round (and every round's time).

    python benchmarks/train_step_benchmark.py --sizes 128 256 --steps 3 --rounds 3

`--sources A B` runs the iecast variants from each source tree in turn (interleaved), to compare
the trainer's step across commits:

    git archive COMMIT src | tar -x -C /tmp/before
    python benchmarks/train_step_benchmark.py --sizes 128 --h 2 --variants iecast-bf16-cl --sources /tmp/before .
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
VARIANTS = ("release-fp32-nchw", "iecast-fp32", "iecast-bf16-cl")


def use_release_statistics() -> None:
    """Compute feature means and stds with `torch.var`, as the release's calc_mean_std does."""
    import iecast.models.functional
    import iecast.training.losses

    def mean_std(x, eps=iecast.models.functional.EPS):
        n, c = x.shape[:2]
        var = x.reshape(n, c, -1).var(dim=2) + eps
        return x.reshape(n, c, -1).mean(dim=2).view(n, c, 1, 1), var.sqrt().view(n, c, 1, 1)

    iecast.models.functional.mean_std = iecast.training.losses.mean_std = mean_std


def release_step(model, discriminator, contents, styles):
    """The release's generator losses, computed the way its training script does."""
    from iecast.training.losses import (adversarial_loss, content_contrastive_loss, content_loss, identity_feature_loss,
                               identity_pixel_loss, pair_ids, style_contrastive_loss, style_loss)

    h = contents.shape[0]
    style_ids, content_ids = pair_ids(h)
    c, s = contents[content_ids], styles[style_ids]
    enc, tr = model.encoder, model.transform
    dec = model.decoder.layers  # the release's order: upsample, pad, conv at full resolution
    c_feats, s_feats = enc(c), enc(s)
    cs = dec(tr(c_feats, s_feats))
    cs_feats = enc(cs)
    i_cc, i_ss = dec(tr(c_feats, c_feats)), dec(tr(s_feats, s_feats))
    terms = {
        "content": content_loss(cs_feats, c_feats), "style": style_loss(cs_feats, s_feats),
        "identity_pixel": identity_pixel_loss(i_cc, c, i_ss, s),
        "identity_feature": identity_feature_loss(enc(i_cc), c_feats, enc(i_ss), s_feats),
        "contrastive_style": style_contrastive_loss(model.style_head(cs_feats["relu3_1"]), h),
        "contrastive_content": content_contrastive_loss(model.content_head(cs_feats["relu4_1"]), h),
        "adversarial": adversarial_loss(discriminator(cs)),
    }
    return cs, terms


def trainer_parts(size: int, h: int, bf16: bool) -> tuple:
    """The model, discriminator and optimizers exactly as `iecast train --preset cpu-small` builds them."""
    from iecast.training.config import build_config
    from iecast.training.loop import _build_parts

    config = build_config("cpu-small", overrides={
        "content": ["-"], "style": ["-"], "h": h, "crop": size, "resize": size,
        "precision": "bf16-mixed" if bf16 else "32-true", "channels_last": bf16, "seed": 0})
    parts = _build_parts(None, config, config.losses, None)
    return parts.model, parts.discriminator, parts.g_opt, parts.d_opt


def run_variant(variant: str, size: int, h: int, steps: int) -> dict:
    """Time `steps` full iterations (D step + G step) after one warm-up; count one step's FLOPs."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from iecast.training.losses import LossWeights, adversarial_loss, discriminator_loss, total_generator_loss
    from iecast.models import MultiScaleDiscriminator
    from iecast.training.model import IEContraASTModel, adversarial_term, discriminator_step
    from iecast.weights import DEFAULT_ENCODER, load_encoder

    torch.manual_seed(0)
    weights = LossWeights()
    bf16 = variant == "iecast-bf16-cl"
    memory = torch.channels_last if bf16 else torch.contiguous_format
    if variant.startswith("release"):
        model = IEContraASTModel(load_encoder(DEFAULT_ENCODER), "sanet", weights)
        disc = MultiScaleDiscriminator()
        g_opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 1e-4)
        d_opt = torch.optim.Adam(disc.parameters(), 1e-4, betas=(0.5, 0.999))
    else:  # built as the trainer builds them (layout, and the frozen encoder's dtype under mixed precision)
        model, disc, g_opt, d_opt = trainer_parts(size, h, bf16)
    contents = torch.rand(h, 3, size, size).contiguous(memory_format=memory)
    styles = torch.rand(h, 3, size, size).contiguous(memory_format=memory)

    def release():
        """Two D passes in the D step; in the G step D's weight gradients are computed and dropped."""
        cs, terms = release_step(model, disc, contents, styles)
        terms.pop("adversarial")
        d_loss = discriminator_loss(disc(styles), disc(cs.detach()))
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        terms["adversarial"] = adversarial_loss(disc(cs))
        total = total_generator_loss(terms, weights)
        g_opt.zero_grad()
        total.backward()
        g_opt.step()

    class AutocastForward(torch.nn.Module):
        """D's forward under the variant's autocast, its backward outside it, as Fabric runs a set-up module."""

        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, x):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return self.module(x)

    def tuned():
        """The trainer's own pieces (`iecast.training.model`), as its loop calls them."""
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            cs, terms = model(contents, styles)
        discriminator_step(AutocastForward(disc), d_opt, styles, cs)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            terms["adversarial"] = adversarial_term(disc, cs)
            total = total_generator_loss(terms, weights)
        g_opt.zero_grad(set_to_none=True)
        total.backward()
        g_opt.step()

    if variant.startswith("release"):
        use_release_statistics()
    step = release if variant.startswith("release") else tuned

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    flops = counter.get_total_flops()
    times = []
    for _ in range(steps):
        tic = time.perf_counter()
        step()
        times.append(time.perf_counter() - tic)
    return {"variant": variant, "size": size, "seconds": min(times), "flops": flops}


def matmul_peak(dtype_name: str) -> float:
    """Best FLOP/s of a 2048^3 matmul in the given dtype (the machine's practical peak)."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.rand(2048, 2048, dtype=dtype), torch.rand(2048, 2048, dtype=dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(10):
        tic = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - tic)
    return 2 * 2048**3 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--h", type=int, default=4, help="batch is 2h")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every variant this many times, interleaved, and keep each one's best round")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--sources", nargs="+", metavar="DIR",
                        help="source trees (each with src/) to run the iecast variants from, interleaved: "
                             "compares the trainer's step across commits (git archive COMMIT src | tar -x -C DIR)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        variant, size = args.child.split(":")
        if variant == "peak":  # bf16 only when a bf16 variant runs: it can be very slow without native kernels
            want_bf16 = "iecast-bf16-cl" in args.variants
            print(json.dumps({"fp32": matmul_peak("float32"), "bf16": matmul_peak("bfloat16") if want_bf16 else float("nan")}))
        else:
            print(json.dumps(run_variant(variant, int(size), args.h, args.steps)))
        return

    def child(spec: str, variant: str = "", source: str | None = None) -> dict:
        env = dict(os.environ)
        if variant.startswith("iecast") and Path(TCMALLOC).exists():
            env["LD_PRELOAD"] = TCMALLOC
        if source:
            env["PYTHONPATH"] = str(Path(source, "src").resolve())
        out = subprocess.run([sys.executable, __file__, "--child", spec, "--h", str(args.h), "--steps", str(args.steps),
                              "--variants", *args.variants],
                             env=env, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    peak = child("peak:0")
    print(f"matmul peak (2048^3, best of 10): fp32 {peak['fp32'] / 1e9:.1f} GFLOP/s, bf16 {peak['bf16'] / 1e9:.1f} GFLOP/s")
    print(f"batch {2 * args.h} (h={args.h}); tcmalloc for iecast variants: {Path(TCMALLOC).exists()}")
    print(f"{'size':>5} {'variant':<30} {'s/iter':>8} {'GFLOP/iter':>11} {'GFLOP/s':>8} {'% peak':>7} {'speed-up':>8}"
          f"  per round (s/iter)")
    runs = [(v, None) for v in args.variants if not (args.sources and v.startswith("iecast"))]
    runs += [(v, src) for v in args.variants if args.sources and v.startswith("iecast") for src in args.sources]
    labels = {(v, src): f"{v}@{Path(src).resolve().name}" if src else v for v, src in runs}
    for size in args.sizes:
        rounds = [{labels[v, src]: child(f"{v}:{size}", v, src) for v, src in runs} for _ in range(args.rounds)]
        best = {label: min((r[label] for r in rounds), key=lambda r: r["seconds"]) for label in labels.values()}
        base = best.get("release-fp32-nchw", {}).get("seconds")
        for v, r in best.items():
            rate = r["flops"] / r["seconds"]
            p = peak["bf16"] if "bf16" in v else peak["fp32"]
            speedup = f"{base / r['seconds']:.2f}x" if base else "-"
            each = " ".join(f"{one[v]['seconds']:.2f}" for one in rounds)
            print(f"{size:>5} {v:<30} {r['seconds']:>8.2f} {r['flops'] / 1e9:>11.1f} {rate / 1e9:>8.1f} {100 * rate / p:>6.1f}% {speedup:>8}"
                  f"  {each}")


if __name__ == "__main__":
    main()
