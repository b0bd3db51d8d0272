"""IEContraAST training with Lightning Fabric: discriminator step, then generator step.

Read top to bottom: `train()`, how a run is set up, then the loop (`_train`, `_loop`). What the
generator step computes and the GAN's two halves are in `iecast.training.model`; checkpoints and
warm starts in `iecast.training.checkpoints`; the run log in `iecast.training.runlog`.
Batches are a pure function of the iteration (see `iecast.training.data`), so a resumed run continues
exactly where a straight run would be.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from iecast import __version__, hardware
from iecast.errors import IecastError
from iecast.models import MultiScaleDiscriminator
from iecast.training.checkpoints import (CHECKPOINT_FORMAT, TRAINED_PARTS, checkpoint_path, newest_valid_checkpoint,
                                         prune_checkpoints, read_checkpoint, rng_state, save_checkpoint, set_rng_state,
                                         warm_start)
from iecast.training.config import TrainConfig
from iecast.training.data import PairStream, check_images, list_images, make_loader
from iecast.training.losses import LossWeights, reconstruction_weights, total_generator_loss
from iecast.training.model import IEContraASTModel, adversarial_term, discriminator_step
from iecast.training.runlog import RunLog
from iecast.weights import load_encoder

# the mixed precisions and the dtype their autocast computes convolutions in
HALF_MIXED = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


@dataclass
class TrainResult:
    iteration: int
    checkpoint: Path | None
    interrupted: bool
    out_dir: Path


class _StopFlag:
    """Set by SIGINT/SIGTERM; the loop checkpoints and stops at the end of the iteration."""

    def __init__(self) -> None:
        self.requested = False
        self._old = {}

    def __enter__(self) -> "_StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def _check_finite(iteration: int, values: dict[str, torch.Tensor], last: Path | None) -> None:
    bad = [k for k, v in values.items() if not torch.isfinite(v.detach()).all()]
    if bad:
        raise IecastError(f"non-finite loss at iteration {iteration} ({', '.join(bad)}); stopped without saving; "
                          f"last good checkpoint: {last or 'none'}")


def parameter_checksum(modules: list[nn.Module | None]) -> str:
    """sha256 of every parameter's bytes: equal across DDP ranks that stayed in sync."""
    digest = hashlib.sha256()
    for module in modules:
        if module is not None:
            for p in module.parameters():
                digest.update(p.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def train(config: TrainConfig) -> TrainResult:
    """Train (or resume) as `config` says on the devices it names; returns where it stopped.

    Multi-process strategies are launched by Fabric (`ddp_spawn` here, or `ddp` under
    `torchrun`/`fabric run`); rank 0's result is returned.
    """
    from lightning_fabric import Fabric

    config.validate()
    requested = config.precision
    # the run records what ran: config.json, checkpoints and exports carry the resolved precision
    config = dataclasses.replace(config, precision=resolve_train_precision(config.precision, config.accelerator))
    fabric = Fabric(accelerator=config.accelerator, devices=config.devices, num_nodes=config.num_nodes,
                    strategy=config.strategy, precision=config.precision)
    return fabric.launch(_train, config, requested)


def training_device_type(accelerator: str) -> str:
    """The device type Fabric will train on for `accelerator` ('auto': CUDA, then MPS, then CPU)."""
    if accelerator in ("cuda", "gpu"):
        return "cuda"
    if accelerator in ("cpu", "mps"):
        return accelerator
    if accelerator == "auto":
        return hardware.resolve_device("auto").type
    return accelerator


def resolve_train_precision(precision: str, accelerator: str) -> str:
    """'auto' is bf16-mixed where the training device computes bf16 natively (CUDA GPUs with bf16,
    CPUs with AMX or AVX512-BF16), else 32-true; any other value is kept as set."""
    if precision != "auto":
        return precision
    return "bf16-mixed" if hardware.native_bf16(training_device_type(accelerator)) else "32-true"


def precision_note(requested: str, resolved: str, device_type: str) -> str:
    """One line for the start of a run: the precision it trains in and why."""
    native = hardware.native_bf16(device_type)
    if requested == "auto":
        why = (f"auto: {device_type} has native bf16" if native
               else f"auto: no native bf16 on {device_type}" + (" (neither AMX nor AVX512-BF16)" if device_type == "cpu" else ""))
    else:
        why = "as set"
        if "bf16" in resolved and device_type == "cpu" and not native:
            why += "; this CPU has no native bf16 (AMX or AVX512-BF16), so it is emulated and slower than 32-true"
    return f"iecast: training precision {resolved} ({why})"


def run_loss_weights(config: TrainConfig) -> LossWeights:
    """The config's loss weights; the AdaIN baseline trains with style + content loss only."""
    weights = config.losses
    if config.transform == "adain":
        weights = LossWeights(content=weights.content, style=weights.style, identity_pixel=0, identity_feature=0,
                              contrastive_content=0, contrastive_style=0, adversarial=0)
    return weights


def find_resume_state(config: TrainConfig, out_dir: Path) -> tuple[dict | None, Path | None]:
    """(checkpoint state, its path) that `config.resume` asks for ("auto": the newest valid one in
    `out_dir`, if any), or (None, None); refused when its encoder or transform differs from the run's."""
    resume_state, resume_path = None, None
    if config.resume == "auto":
        found = newest_valid_checkpoint(out_dir)
        if found:
            resume_path, resume_state = found
    elif config.resume:
        resume_path, resume_state = Path(config.resume), read_checkpoint(config.resume)
    if resume_state is not None:
        if resume_state["encoder"] != config.encoder:
            raise IecastError(f"{resume_path}: checkpoint was trained with encoder {resume_state['encoder']!r}, "
                              f"not {config.encoder!r}; nothing was changed")
        if resume_state["config"]["transform"] != config.transform:
            raise IecastError(f"{resume_path}: checkpoint is a {resume_state['config']['transform']!r} run, not {config.transform!r}")
    return resume_state, resume_path


@dataclass
class _Parts:
    """What the loop trains: the model and discriminator, their optimizers, Fabric's wrapped
    versions of both (set by `_setup_parts`) and the mixed-precision grad scaler, if any."""

    model: IEContraASTModel
    discriminator: MultiScaleDiscriminator | None
    g_opt: torch.optim.Optimizer
    d_opt: torch.optim.Optimizer | None
    base_iterations: int  # iterations the warm start had already trained
    model_f: Any = None
    g_opt_f: Any = None
    disc_f: Any = None
    d_opt_f: Any = None
    scaler: Any = None


def _build_parts(fabric, config: TrainConfig, weights: LossWeights, resume_state: dict | None) -> _Parts:
    """Seeds, builds the model and discriminator (warm-started when asked and not resuming) and their optimizers."""
    torch.manual_seed(config.seed)
    model = IEContraASTModel(load_encoder(config.encoder), config.transform, weights, config.temperature)
    discriminator = MultiScaleDiscriminator() if weights.adversarial else None
    if config.decoder_init == "kaiming":
        model.decoder.init_kaiming()
    base_iterations = resume_state.get("base_iterations", 0) if resume_state is not None else 0
    if config.init_from and resume_state is None:
        base_iterations = warm_start(model, discriminator, config.init_from, config.encoder, config.init_training_state,
                                     quiet=not fabric.is_global_zero)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
        discriminator = discriminator.to(memory_format=torch.channels_last) if discriminator else None
    if config.precision in HALF_MIXED:  # autocast would re-cast the frozen weights every call (it caches trainable ones only)
        model.encoder.to(HALF_MIXED[config.precision])
    g_opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=config.d_lr, betas=(config.d_beta1, config.d_beta2)) if discriminator else None
    return _Parts(model, discriminator, g_opt, d_opt, base_iterations)


def _restore_weights(parts: _Parts, resume_state: dict | None) -> int:
    """Loads the trained parts and the RNG state from `resume_state`; returns the iteration to start at."""
    if resume_state is None:
        return 0
    for part in TRAINED_PARTS:
        if getattr(parts.model, part) is not None:
            getattr(parts.model, part).load_state_dict(resume_state[part])
    if parts.discriminator is not None:
        parts.discriminator.load_state_dict(resume_state["discriminator"])
    set_rng_state(resume_state["rng"])
    return resume_state["iteration"]


def _setup_parts(fabric, parts: _Parts, resume_state: dict | None) -> None:
    """Wraps the parts with Fabric, then restores the optimizers' and grad scaler's state when resuming."""
    parts.model_f, parts.g_opt_f = fabric.setup(parts.model, parts.g_opt)
    parts.disc_f, parts.d_opt_f = fabric.setup(parts.discriminator, parts.d_opt) if parts.discriminator else (None, None)
    if resume_state is not None:  # after setup, so Adam's moments follow the parameters' device and dtype
        parts.g_opt.load_state_dict(resume_state["g_opt"])
        if parts.d_opt is not None:
            parts.d_opt.load_state_dict(resume_state["d_opt"])
    parts.scaler = getattr(fabric.strategy.precision, "scaler", None)
    if resume_state is not None and parts.scaler is not None and resume_state.get("scaler"):
        parts.scaler.load_state_dict(resume_state["scaler"])


def _save_checkpoint(fabric, config: TrainConfig, out_dir: Path, parts: _Parts, iteration: int,
                     last_ckpt: Path | None) -> Path:
    """Checkpoints the run at `iteration` (rank 0 writes, then prunes old ones); refuses non-finite weights."""
    for module in (parts.model, parts.discriminator):
        if module is not None and not all(torch.isfinite(p).all() for p in module.parameters()):
            raise IecastError(f"non-finite weights at iteration {iteration}; not saved; last good checkpoint: {last_ckpt or 'none'}")
    model, discriminator, d_opt, scaler = parts.model, parts.discriminator, parts.d_opt, parts.scaler
    state = {
        "format": CHECKPOINT_FORMAT, "iecast_version": __version__, "iteration": iteration,
        "base_iterations": parts.base_iterations,
        "encoder": config.encoder, "config": config.to_dict(), "rng": rng_state(),
        "g_opt": parts.g_opt.state_dict(), "d_opt": d_opt.state_dict() if d_opt else None,
        "discriminator": discriminator.state_dict() if discriminator else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        **{part: getattr(model, part).state_dict() if getattr(model, part) is not None else None for part in TRAINED_PARTS},
    }
    path = checkpoint_path(out_dir, iteration)
    if fabric.is_global_zero:
        save_checkpoint(path, state)
        prune_checkpoints(out_dir, config.keep_checkpoints)
    fabric.barrier()
    return path


def _set_learning_rates(config: TrainConfig, parts: _Parts, iteration: int) -> float:
    """Applies the inverse-time decay, counted over every iteration the model has trained (a warm
    start continues its schedule), times this run's linear warm-up; returns the scale it used."""
    lr_scale = 1.0 / (1.0 + config.lr_decay * (parts.base_iterations + iteration))
    if iteration < config.lr_warmup:
        lr_scale *= (iteration + 1) / config.lr_warmup
    for group in parts.g_opt.param_groups:
        group["lr"] = config.lr * lr_scale
    if parts.d_opt:
        for group in parts.d_opt.param_groups:
            group["lr"] = config.d_lr * lr_scale
    return lr_scale


def _train_step(fabric, parts: _Parts, weights: LossWeights, c: torch.Tensor, s: torch.Tensor,
                check: Callable[[dict[str, torch.Tensor]], None]):
    """One iteration: the D step (when there is a discriminator), then the G step.
    Returns (stylizations, loss terms, total generator loss, discriminator loss or None)."""
    cs, terms = parts.model_f(c, s)
    d_loss = None
    if parts.disc_f is not None and weights.adversarial:  # a reconstruction phase leaves D as it is
        d_loss = discriminator_step(parts.disc_f, parts.d_opt_f, s, cs, fabric.backward,
                                    lambda loss: check({"discriminator": loss}))
        with fabric.autocast():  # the unwrapped D: DDP must not expect gradients for it here
            terms["adversarial"] = adversarial_term(parts.discriminator, cs)
    total = total_generator_loss(terms, weights)
    check({**terms, "total": total})
    parts.g_opt_f.zero_grad(set_to_none=True)
    fabric.backward(total)
    parts.g_opt_f.step()
    return cs, terms, total, d_loss


def _progress_values(fabric, config: TrainConfig, terms: dict, total: torch.Tensor, d_loss: torch.Tensor | None,
                     lr_scale: float, speed: float, bad_images: int) -> dict:
    """The scalars of one log line."""
    values = {k: v.detach().item() for k, v in terms.items()}
    values.update(total=total.detach().item(), lr=config.lr * lr_scale, it_per_s=speed,
                  images_per_s=speed * 2 * config.h * fabric.world_size, bad_images=bad_images)
    if d_loss is not None:
        values["discriminator"] = d_loss.detach().item()
    return values


def _start_run_dir(out_dir: Path, config: TrainConfig) -> None:
    """Rank 0, before the first iteration: drops temporary files a kill left mid-write, records the config."""
    for stale in (out_dir / "checkpoints").glob(".ckpt_*.tmp"):
        stale.unlink(missing_ok=True)
    (out_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))


def _train(fabric, config: TrainConfig, requested_precision: str | None = None) -> TrainResult:
    requested_precision = requested_precision or config.precision
    if fabric.is_global_zero:
        print(precision_note(requested_precision, config.precision, fabric.device.type), file=sys.stderr, flush=True)

    out_dir = Path(config.out_dir)
    weights = run_loss_weights(config)
    resume_state, resume_path = find_resume_state(config, out_dir)

    if fabric.device.type == "cuda":  # every batch has the same shape: let cuDNN time its kernels once
        torch.backends.cudnn.benchmark = True

    contents = check_images(list_images(config.content), "content")
    styles = check_images(list_images(config.style), "style")

    parts = _build_parts(fabric, config, weights, resume_state)
    start = _restore_weights(parts, resume_state)
    _setup_parts(fabric, parts, resume_state)

    stream = PairStream(contents, styles, config.h, config.resize, config.crop, config.resize_mode,
                        config.seed, fabric.global_rank, fabric.world_size)
    loader = make_loader(stream, start, config.iterations, config.workers)
    log = RunLog(out_dir, fabric.is_global_zero, config.tensorboard)
    if fabric.is_global_zero:
        _start_run_dir(out_dir, config)
        log.scalars(start, {"event": "start", "resumed_from": str(resume_path) if resume_path else None,
                            "precision": config.precision, "precision_requested": requested_precision,
                            "content_images": len(contents), "style_images": len(styles), "world_size": fabric.world_size})

    iteration, last_ckpt, interrupted = _loop(fabric, config, out_dir, parts, weights, loader, log, start, resume_path)
    (out_dir / f"final_rank{fabric.global_rank}.json").write_text(json.dumps(
        {"iteration": iteration, "parameters_sha256": parameter_checksum([parts.model, parts.discriminator])}))
    log.scalars(iteration, {"event": "interrupted" if interrupted else "finished", "checkpoint": str(last_ckpt)})
    log.close()
    return TrainResult(iteration=iteration, checkpoint=last_ckpt, interrupted=interrupted, out_dir=out_dir)


def _loop(fabric, config: TrainConfig, out_dir: Path, parts: _Parts, weights: LossWeights, loader, log: RunLog,
          start: int, last_ckpt: Path | None) -> tuple[int, Path | None, bool]:
    """Iterations `start` up to `config.iterations`, or until a stop signal; logs, saves image grids
    and checkpoints on schedule. Returns (iterations done, last checkpoint, whether it was interrupted)."""
    iteration = start
    bad_images = 0
    tic, tic_iter = time.perf_counter(), start
    bar = tqdm(total=config.iterations, initial=start, disable=not fabric.is_global_zero, desc="train", unit="it")
    memory = torch.channels_last if config.channels_last else torch.contiguous_format
    interrupted = False
    with _StopFlag() as stop:
        for iteration, (c, s, bad) in zip(range(start, config.iterations), loader):
            bad_images += int(bad)
            lr_scale = _set_learning_rates(config, parts, iteration)
            c = fabric.to_device(c).contiguous(memory_format=memory)
            s = fabric.to_device(s).contiguous(memory_format=memory)
            step_weights = reconstruction_weights(weights) if iteration < config.reconstruction_first else weights
            cs, terms, total, d_loss = _train_step(fabric, parts, step_weights, c, s,
                                                   lambda values: _check_finite(iteration, values, last_ckpt))

            done = iteration + 1
            bar.update(1)
            if done % config.log_every == 0 or done == config.iterations:
                speed = (done - tic_iter) / max(time.perf_counter() - tic, 1e-9)
                values = _progress_values(fabric, config, terms, total, d_loss, lr_scale, speed, bad_images)
                log.scalars(done, values)
                bar.set_postfix(loss=f"{values['total']:.3f}")
                tic, tic_iter = time.perf_counter(), done
            if done % config.image_every == 0 or done == config.iterations:
                n = min(4, config.h)
                log.image_grid(done, s[:n].float().cpu(), c[:n].float().cpu(), cs[:n].detach().float().cpu())
            stop_now = stop.requested
            if fabric.world_size > 1:
                stop_now = fabric.strategy.reduce_boolean_decision(stop_now, all=False)
            if done % config.checkpoint_every == 0 or done == config.iterations or stop_now:
                last_ckpt = _save_checkpoint(fabric, config, out_dir, parts, done, last_ckpt)
            iteration = done
            if stop_now:
                interrupted = True
                break
    bar.close()
    return iteration, last_ckpt, interrupted
