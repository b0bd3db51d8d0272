"""`iecast train`: train or fine-tune from a preset, a config file and key=value overrides."""
from __future__ import annotations

import argparse

from iecast.training import loop
from iecast.training.config import build_config, parse_override


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train or fine-tune a model",
                       description="Settings: defaults (the release), then --preset, then --config, then the flags "
                                   "below, then KEY=VALUE overrides (any TrainConfig field; a loss weight "
                                   "as losses.NAME, or the older loss_NAME).")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. h=4 crop=128 losses.adversarial=0")
    p.add_argument("--preset", choices=["paper", "cpu-small"], help="start from a preset")
    p.add_argument("--config", help="TOML, YAML or JSON file of settings")
    p.add_argument("--content", nargs="+", help="content folders or list files")
    p.add_argument("--style", nargs="+", help="style folders or list files")
    p.add_argument("--out", dest="out_dir", help="run folder (checkpoints, logs, images)")
    p.add_argument("--iterations", type=int)
    p.add_argument("--resume", help="'auto' (newest valid checkpoint in the run folder) or a checkpoint path")
    p.add_argument("--init-from", dest="init_from", help="warm start from a pretrained name or stylizer file; "
                   "its discriminator and heads come from <file>.train.safetensors beside it, if present")
    p.add_argument("--init-training-state", dest="init_training_state", metavar="FILE",
                   help="with --init-from: the .train.safetensors (discriminator + heads) to warm-start from, "
                        "e.g. checkpoints/iecontraast-vgg16-rms/iecast.train.safetensors with --init-from default")
    p.add_argument("--devices", type=int)
    p.add_argument("--num-nodes", dest="num_nodes", type=int)
    p.add_argument("--strategy", help="Fabric strategy: auto, ddp, ddp_spawn, ...")
    p.add_argument("--precision", help="auto (bf16-mixed where the hardware has native bf16: GPUs with bf16, CPUs with "
                                       "AMX or AVX512-BF16; else 32-true), 32-true, bf16-mixed or 16-mixed "
                                       "(default: the preset's; cpu-small uses auto, paper 32-true)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = {k: getattr(args, k) for k in ("content", "style", "out_dir", "iterations", "resume", "init_from",
                                                "init_training_state", "devices", "num_nodes", "strategy", "precision")
                 if getattr(args, k) is not None}
    overrides.update(parse_override(o) for o in args.overrides)
    # `loop.train`, looked up at call time, so a test can replace it
    result = loop.train(build_config(args.preset, args.config, overrides))
    if result is not None:
        state = "interrupted" if result.interrupted else "finished"
        print(f"{state} at iteration {result.iteration}; checkpoint: {result.checkpoint}")
    return 0
