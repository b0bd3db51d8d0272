"""Latency of the exported model in onnxruntime vs PyTorch, at 512 px, on this CPU, in one run.

Backends, all on the same content/style pair and the same weights:
- `torch-graph`: the module that gets exported (`iecast.inference.export.ExportableStylizer`) run eagerly;
  the like-for-like reference for the exported files;
- `Stylizer.stylize`: the library's own path (chunked attention, skips T(c, c) at alpha = 1);
- `onnxruntime`: the exported ONNX file (CPUExecutionProvider, all graph optimisations);
- `torchscript`: the exported TorchScript file.

Runs are interleaved (every repeat runs each backend once, in a rotating order) so background
load on a shared machine hits all backends alike; each backend gets one untimed warm-up first.
All backends use the same number of threads. The exported graph always computes T(c, c) for
its alpha input; `Stylizer.stylize` skips it at alpha = 1, so compare `onnxruntime` with
`torch-graph` for the runtime itself.

    .venv/bin/python benchmarks/onnx_vs_torch.py                   # random-init weights, 512x512
    .venv/bin/python benchmarks/onnx_vs_torch.py --weights model.safetensors --size 512 --repeats 7
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch


def random_stylizer():
    """A random-init SANet stylizer on the default encoder (latency does not depend on trained values)."""
    from iecast.models.network import StyleTransferNetwork
    from iecast.models.transform import build_transform
    from iecast.inference.stylizer import Stylizer
    from iecast.weights import DEFAULT_ENCODER, load_encoder

    torch.manual_seed(0)
    network = StyleTransferNetwork(load_encoder(DEFAULT_ENCODER), build_transform("sanet")).eval()
    return Stylizer(network)


def backends(stylizer, folder: Path, threads: int) -> dict[str, Callable]:
    """{name: run(content, style, alpha) -> output tensor}."""
    import onnxruntime

    from iecast.inference.export import ExportableStylizer, export_onnx, export_torchscript

    onnx_path = export_onnx(stylizer.network, folder / "model.onnx")
    script_path = export_torchscript(stylizer.network, folder / "model.pt")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    graph = ExportableStylizer(stylizer.network).eval()
    with torch.no_grad():
        scripted = torch.jit.load(str(script_path))

    def run_onnx(content, style, alpha):
        feeds = {"content": content.numpy(), "style": style.numpy(), "alpha": alpha.numpy()}
        return torch.from_numpy(session.run(["output"], feeds)[0])

    def run_graph(content, style, alpha):
        with torch.inference_mode():
            return graph(content, style, alpha)

    def run_script(content, style, alpha):
        with torch.inference_mode():
            return scripted(content, style, alpha)

    def run_stylizer(content, style, alpha):
        return stylizer.stylize(content, style, alpha=float(alpha))  # tensors: the style keeps its size

    return {"torch-graph": run_graph, "Stylizer.stylize": run_stylizer, "onnxruntime": run_onnx, "torchscript": run_script}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="pretrained name or iecast .safetensors (default: random init)")
    parser.add_argument("--size", type=int, default=512, help="content and style side in pixels")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)

    import onnxruntime

    from iecast.inference.stylizer import Stylizer

    torch.set_num_threads(args.threads)
    stylizer = Stylizer.from_pretrained(args.weights) if args.weights else random_stylizer()
    generator = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, args.size, args.size, generator=generator)
    style = torch.rand(1, 3, args.size, args.size, generator=generator)
    alpha = torch.tensor([args.alpha])
    with tempfile.TemporaryDirectory() as scratch:
        print(f"exporting ({'random-init' if not args.weights else args.weights}) ...", file=sys.stderr, flush=True)
        runs = backends(stylizer, Path(scratch), args.threads)
        names = list(runs)
        outputs = {name: runs[name](content, style, alpha) for name in names}  # warm-up, untimed
        times: dict[str, list[float]] = {name: [] for name in names}
        for repeat in range(args.repeats):
            order = names[repeat % len(names):] + names[:repeat % len(names)]
            for name in order:
                start = time.perf_counter()
                runs[name](content, style, alpha)
                times[name].append(time.perf_counter() - start)
    reference = outputs["torch-graph"]
    inside = float(((reference > 0) & (reference < 1)).float().mean())
    print(f"content {args.size}x{args.size}, style {args.size}x{args.size}, alpha {args.alpha}, "
          f"{args.threads} threads, {args.repeats} interleaved repeats; torch {torch.__version__}, "
          f"onnxruntime {onnxruntime.__version__}, {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    print(f"reference output: std {float(reference.std()):.3g}, {inside:.0%} of values inside (0, 1) "
          f"(the |diff| column is only meaningful where this is not ~0%)")
    print(f"{'backend':<18} {'median ms':>10} {'min ms':>8} {'max ms':>8} {'vs torch-graph':>15} {'max |diff|':>11}")
    base = statistics.median(times["torch-graph"])
    for name in names:
        median = statistics.median(times[name])
        diff = float((outputs[name] - reference).abs().max())
        print(f"{name:<18} {median * 1e3:>10.0f} {min(times[name]) * 1e3:>8.0f} {max(times[name]) * 1e3:>8.0f} "
              f"{base / median:>14.2f}x {diff:>11.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
