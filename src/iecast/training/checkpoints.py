"""Training-state files: the `.pt` training checkpoints (plain dicts of tensors and builtins,
read with `weights_only=True`, so no class is pickled by module path), RNG state, exporting a
checkpoint to inference weights (+ `<name>.train.safetensors`), and warm starts from them."""
from __future__ import annotations

import json
import os
import random
import sys
import warnings
from pathlib import Path

import torch
from torch import nn
from safetensors.torch import save_file

from iecast.errors import IecastError
from iecast.models import Decoder, build_transform
from iecast.training.config import nest_loss_weights
from iecast.training.model import IEContraASTModel
from iecast.weights import load_into, publish, read_safetensors, read_stylizer, resolve_stylizer_path, save_stylizer

CHECKPOINT_FORMAT = "iecast-train"

TRAINED_PARTS = ("decoder", "transform", "style_head", "content_head")


def checkpoint_path(out_dir: Path, iteration: int) -> Path:
    return out_dir / "checkpoints" / f"ckpt_{iteration:08d}.pt"


def save_checkpoint(path: Path, state: dict) -> Path:
    """torch.save to a temp file, fsync, rename: a kill at any moment leaves old files intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def read_checkpoint(path: str | Path) -> dict:
    """A training checkpoint, or a one-line error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise IecastError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise IecastError(f"{path}: unreadable checkpoint ({(str(exc).splitlines() or [type(exc).__name__])[0][:120]})") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise IecastError(f"{path}: not an iecast training checkpoint")
    return state


def list_checkpoints(out_dir: Path) -> list[Path]:
    return sorted((out_dir / "checkpoints").glob("ckpt_*.pt"))


def newest_valid_checkpoint(out_dir: Path) -> tuple[Path, dict] | None:
    """The newest checkpoint that loads; damaged newer ones are skipped with a warning."""
    for path in reversed(list_checkpoints(out_dir)):
        try:
            return path, read_checkpoint(path)
        except IecastError as exc:
            warnings.warn(f"skipping {exc}", stacklevel=2)
    return None


def prune_checkpoints(out_dir: Path, keep: int) -> None:
    for old in list_checkpoints(out_dir)[:-keep]:
        old.unlink(missing_ok=True)


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def training_state_path(stylizer_path: Path) -> Path:
    """Where the discriminator and heads that go with an exported stylizer are kept."""
    return stylizer_path.with_name(stylizer_path.name.replace(".safetensors", "") + ".train.safetensors")


def export_checkpoint(checkpoint: str | Path, out: str | Path, fp16: bool = False, with_training_state: bool = False) -> Path:
    """Turn a training checkpoint into inference weights that `Stylizer.from_pretrained(out)` loads.

    With `with_training_state`, also write the discriminator and heads (no optimiser state) to
    `<out>.train.safetensors`, enough to warm-start training from the exported model.
    """
    state = read_checkpoint(checkpoint)
    config = state["config"]
    holder = nn.Module()
    holder.decoder, holder.transform = Decoder(), build_transform(config["transform"])
    load_into(holder.decoder, state["decoder"], checkpoint, "decoder")
    load_into(holder.transform, state["transform"], checkpoint, "transform")
    dtype = torch.float16 if fp16 else torch.float32
    # the header records the loss weights nested, also for a checkpoint written with flat loss_* keys
    config = {**nest_loss_weights(config, str(checkpoint))[0],
              "iterations_trained": state.get("base_iterations", 0) + state["iteration"]}
    out = save_stylizer(out, holder, state["encoder"], config, dtype=dtype)
    if with_training_state:
        extra = {f"{part}.{k}": v.to(dtype).contiguous() for part in ("discriminator", "style_head", "content_head")
                 for k, v in (state.get(part) or {}).items()}
        tmp = training_state_path(out).with_suffix(".tmp")
        save_file(extra, str(tmp), metadata={"format": "iecast-train-state", "encoder": state["encoder"],
                                              "iteration": str(state["iteration"]),
                                              "iterations_trained": str(config["iterations_trained"])})
        publish(tmp, training_state_path(out))
    return out


def find_training_state(stylizer_path: Path, training_state: str | Path | None = None) -> Path | None:
    """The discriminator + heads file a warm start from `stylizer_path` uses: `training_state` when
    given (it must exist), else `<name>.train.safetensors` beside the stylizer if there is one, else None."""
    if training_state is not None:
        path = Path(training_state)
        if not path.is_file():
            raise IecastError(f"{path}: no such training state file")
        return path
    beside = training_state_path(stylizer_path)
    return beside if beside.is_file() else None


def read_training_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a `.train.safetensors` file, refusing an unreadable or damaged one."""
    extra, meta = read_safetensors(path, "training state")
    bad = [k for k, v in extra.items() if not v.is_floating_point() or not bool(torch.isfinite(v).all())]
    if bad:
        raise IecastError(f"{path}: tensor {bad[0]} is not finite floating-point weights; the file is damaged")
    return extra, meta


def warm_start(model: IEContraASTModel, discriminator: nn.Module | None, name_or_path: str, encoder_id: str,
               training_state: str | Path | None = None, quiet: bool = False) -> int:
    """Initialise from an exported stylizer and its training state (`find_training_state`: the file
    given, else the one beside the stylizer, if present; without one a note on stderr unless
    `quiet`); return the iterations it was trained for, so the run's export can count them in
    `iterations_trained`."""
    path = resolve_stylizer_path(name_or_path)
    tensors, meta = read_stylizer(path)
    if meta["encoder"] != encoder_id:
        raise IecastError(f"{path}: trained with encoder {meta['encoder']!r}, but this run uses {encoder_id!r}")
    if meta.get("transform", "sanet") != model.transform.kind:
        raise IecastError(f"{path}: a {meta.get('transform')!r} model cannot initialise a {model.transform.kind!r} run")
    iterations = int(json.loads(meta.get("config", "{}")).get("iterations_trained", 0))
    extra_path = find_training_state(path, training_state)
    extra, extra_meta = read_training_state(extra_path) if extra_path is not None else ({}, {})
    if extra_path is None and not quiet:
        print(f"iecast: warm start from {name_or_path} without a training state: the discriminator and "
              "heads start fresh (--init-training-state FILE names one)", file=sys.stderr, flush=True)
    if extra_path is not None:  # a training state from another model would silently pair the wrong discriminator
        if extra_meta.get("encoder", encoder_id) != encoder_id:
            raise IecastError(f"{extra_path}: training state of a model with encoder {extra_meta['encoder']!r}, "
                              f"but {path} and this run use {encoder_id!r}")
        if "iterations_trained" in extra_meta and int(extra_meta["iterations_trained"]) != iterations:
            raise IecastError(f"{extra_path}: training state at {extra_meta['iterations_trained']} iterations, "
                              f"but {path} was trained for {iterations}; they are not one model's")
    load_into(model.decoder, {k[8:]: v for k, v in tensors.items() if k.startswith("decoder.")}, path, "decoder")
    load_into(model.transform, {k[10:]: v for k, v in tensors.items() if k.startswith("transform.")}, path, "transform")
    for part, module in (("discriminator", discriminator), ("style_head", model.style_head), ("content_head", model.content_head)):
        sub = {k[len(part) + 1:]: v for k, v in extra.items() if k.startswith(part + ".")}
        if module is not None and sub:
            load_into(module, sub, extra_path, part)
    return iterations
