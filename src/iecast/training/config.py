"""Training configuration: one dataclass, presets, files (TOML or YAML) and key=value overrides."""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from iecast.errors import IecastError
from iecast.training.losses import LossWeights
from iecast.models.transform import TRANSFORMS
from iecast.weights import DEFAULT_ENCODER


@dataclass
class TrainConfig:
    """Every training setting. Defaults are the authors' release (SPEC.md), except the encoder,
    which defaults to the offline VGG-16 (the release's VGG-19 file is not reachable offline)."""

    content: list[str] = field(default_factory=list)  # roots (recursive) or .txt list files
    style: list[str] = field(default_factory=list)
    out_dir: str = "runs/iecast"
    encoder: str = DEFAULT_ENCODER
    transform: str = "sanet"  # "sanet" (IEContraAST / SANet) or "adain" (baseline)
    iterations: int = 160_000
    h: int = 6  # batch = 2h stylizations from h contents and h styles
    resize: int = 512
    resize_mode: str = "square"  # "square" (release: 512x512) or "shorter-side" (paper text)
    crop: int = 256
    lr: float = 1e-4
    lr_decay: float = 5e-5  # lr = lr / (1 + lr_decay * iteration), both optimisers; a warm start's iterations count
    lr_warmup: int = 0  # iterations of linear lr warm-up at the start of a run (a warm start's Adam moments start empty)
    reconstruction_first: int = 0  # iterations at a run's start that train only the identity (reconstruction) terms
    d_lr: float = 1e-4
    d_beta1: float = 0.5
    d_beta2: float = 0.999
    temperature: float = 0.2
    decoder_init: str = "default"  # "default" (PyTorch's, as the release) or "kaiming" (Decoder.init_kaiming)
    # the loss weights, nested (`losses.content=10`, a [losses] table; the flat `loss_content=10` of
    # older configs and checkpoints maps here); their defaults, the release's, are declared once in LossWeights
    losses: LossWeights = field(default_factory=LossWeights)
    precision: str = "32-true"  # "auto" (bf16-mixed where bf16 is native, else 32-true), "32-true", "bf16-mixed", "16-mixed"
    channels_last: bool = False
    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    workers: int = 2
    seed: int = 0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 10
    image_every: int = 500
    tensorboard: bool = True
    init_from: str | None = None  # warm start: pretrained name or stylizer file
    # with init_from: the discriminator + heads file to warm-start them from (default: the stylizer's
    # `<name>.train.safetensors` beside it, if there is one; else they start fresh)
    init_training_state: str | None = None
    resume: str | None = None  # "auto" (newest valid checkpoint in out_dir) or a checkpoint path

    def validate(self, spellings: dict[str, str] | None = None) -> "TrainConfig":
        """Raise a one-line IecastError for settings that cannot train. `spellings` maps a setting's
        name ("losses.content") to the key the user gave it as ("loss_content"), for the messages."""
        self._validate_numbers(spellings or {})
        if self.h < 2:
            raise IecastError(f"h must be >= 2 (every output needs a positive sharing its style and its content); got {self.h}")
        if self.transform not in TRANSFORMS:
            raise IecastError(f"transform must be one of {', '.join(TRANSFORMS)}; got {self.transform!r}")
        if self.decoder_init not in ("default", "kaiming"):
            raise IecastError(f"decoder_init must be 'default' or 'kaiming'; got {self.decoder_init!r}")
        if self.resize_mode not in ("square", "shorter-side"):
            raise IecastError(f"resize_mode must be 'square' or 'shorter-side'; got {self.resize_mode!r}")
        if self.crop < 32 or self.crop % 16:
            raise IecastError(f"crop must be a multiple of 16 and >= 32; got {self.crop}")
        if self.losses.adversarial and self.crop < 128:
            raise IecastError(f"crop must be >= 128 with the adversarial loss (its coarsest scale needs 2x2 features); got {self.crop}")
        if self.resize < self.crop:
            raise IecastError(f"resize ({self.resize}) must be >= crop ({self.crop})")
        if self.precision not in TRAIN_PRECISIONS:
            raise IecastError(f"precision must be one of auto, 32-true, bf16-mixed, 16-mixed, bf16-true; got {self.precision!r}")
        if self.init_training_state and not self.init_from:
            raise IecastError("init_training_state needs init_from (the stylizer file or name it goes with)")
        if not self.content or not self.style:
            raise IecastError("training needs content and style data: set content=[...] and style=[...] (folders or list files)")
        return self

    def _validate_numbers(self, spellings: dict[str, str]) -> None:
        """Every numeric setting within its range: finite, the right sign, integers within bounds."""
        for name, (low, high) in INT_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise IecastError(f"{name} must be an integer; got {value!r}")
            if value < low:
                raise IecastError(f"{name} must be >= {low}; got {value}")
            if high is not None and value > high:
                raise IecastError(f"{name} must be <= {high}; got {value}")
        for setting, rule in FLOAT_RULES.items():
            value = functools.reduce(getattr, setting.split("."), self)  # "losses.content": self.losses.content
            name = spellings.get(setting, setting)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise IecastError(f"{name} must be a finite number; got {value!r}")
            if rule == ">=0" and value < 0:
                raise IecastError(f"{name} must be >= 0; got {value!r}")
            if rule == ">0" and value <= 0:
                raise IecastError(f"{name} must be > 0; got {value!r}")
            if rule == "[0,1)" and not 0 <= value < 1:
                raise IecastError(f"{name} must be in [0, 1) (an Adam beta); got {value!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


TRAIN_PRECISIONS = ("auto", "32-true", "32", "bf16-mixed", "16-mixed", "bf16-true")

# (lowest, highest or None) of each integer setting; h, crop and resize have further rules in validate()
INT_RANGES: dict[str, tuple[int, int | None]] = {
    "iterations": (1, None), "lr_warmup": (0, None), "reconstruction_first": (0, None), "h": (2, 4096), "resize": (32, 16384), "crop": (32, 16384),
    "devices": (1, None), "num_nodes": (1, None), "workers": (0, 1024), "seed": (0, 2**63 - 1),
    "checkpoint_every": (1, None), "keep_checkpoints": (1, None), "log_every": (1, None), "image_every": (1, None),
}

# learning rates may be 0 (a frozen warm start); Adam's betas lie in [0, 1); the contrastive
# temperature divides the similarities, so it must be positive
FLOAT_RULES: dict[str, str] = {
    "lr": ">=0", "lr_decay": ">=0", "d_lr": ">=0", "d_beta1": "[0,1)", "d_beta2": "[0,1)", "temperature": ">0",
    **{f"losses.{f.name}": ">=0" for f in dataclasses.fields(LossWeights)},
}

# the flat keys of configs and checkpoints written before the loss weights were nested
FLAT_LOSS_KEYS: dict[str, str] = {f"loss_{f.name}": f.name for f in dataclasses.fields(LossWeights)}

PRESETS: dict[str, dict] = {
    # Exactly the release: batch 12 (h=6), 512 resize + 256 crop, fp32, 160k iterations.
    "paper": {},
    # Most learning per CPU-hour on a 2-core AVX2 machine (benchmarks/train_step_benchmark.py):
    # the smallest valid batch and crop, NCHW. Precision "auto": fp32 there (bf16 autocast
    # measured slower without native bf16 kernels, AVX2 or AVX-512 without BF16), bf16-mixed on
    # CPUs with AMX or AVX512-BF16 and on GPUs (2.4x the fp32 step on an AMX Xeon, issue 21).
    # Loss weights and lr stay the release's: weighting content 10x made decoders collapse to
    # flat images, and 5x or 10x the lr reconstructed worse by iteration 100 (docs/training/README.md).
    "cpu-small": {
        "h": 2, "resize": 256, "crop": 128, "precision": "auto", "channels_last": False,
        "workers": 1, "checkpoint_every": 50, "log_every": 5, "image_every": 50,
    },
}


def _field_types() -> dict[str, typing.Any]:
    return typing.get_type_hints(TrainConfig)


def _coerce(name: str, value: typing.Any, source: str, hint: typing.Any = None) -> typing.Any:
    """Check/convert `value` to `hint`, by default the declared type of field `name`."""
    hint = hint or _field_types()[name]
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if optional or isinstance(hint, types.UnionType) else hint
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and optional):
        if optional:
            return None
        raise IecastError(f"{source}: {name} cannot be empty")
    origin = typing.get_origin(base)
    try:
        if origin is list:
            if isinstance(value, str):
                value = [v for v in value.split(",") if v]
            if not isinstance(value, list):
                raise TypeError
            return [str(v) for v in value]
        if base is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            raise TypeError
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if base is float:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if base is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise TypeError
            return str(value)
    except (TypeError, ValueError):
        pass
    raise IecastError(f"{source}: {name} must be {getattr(base, '__name__', base)}, got {value!r}")


def nest_loss_weights(settings: dict, source: str) -> tuple[dict, dict[str, str]]:
    """`settings` with every loss weight in one "losses" table: the flat `loss_content` keys (older
    configs and checkpoints), the dotted `losses.content` overrides and a `losses` table (or a
    LossWeights) all map to {"content": ...}. Returns it and how each weight was spelled
    ({"losses.content": "loss_content"}); a weight given twice in one source is an error."""
    out, losses, spelled = {}, {}, {}

    def put(name: str, value: typing.Any, key: str) -> None:
        if name not in LossWeights.__dataclass_fields__:
            raise IecastError(f"{source}: unknown setting {key!r}")
        if name in losses:
            raise IecastError(f"{source}: the loss weight {name} is given twice ({spelled['losses.' + name]} and {key}); "
                              "give it once")
        losses[name], spelled[f"losses.{name}"] = value, key

    for key, value in settings.items():
        if key == "losses":
            table = dataclasses.asdict(value) if isinstance(value, LossWeights) else value
            if not isinstance(table, dict):
                raise IecastError(f"{source}: losses must be a table of loss weights (e.g. content = 1.0), got {value!r}")
            for name, weight in table.items():
                put(str(name), weight, f"losses.{name}")
        elif key.startswith("losses."):
            put(key[len("losses."):], value, key)
        elif key in FLAT_LOSS_KEYS:
            put(FLAT_LOSS_KEYS[key], value, key)
        else:
            out[key] = value
    if losses:
        out["losses"] = losses
    return out, spelled


def apply_settings(config: TrainConfig, settings: dict, source: str,
                   spellings: dict[str, str] | None = None) -> TrainConfig:
    """Return a copy of `config` with `settings` applied; unknown keys and wrong types are errors.
    Loss weights may be nested or flat (`nest_loss_weights`); `spellings`, if given, records how."""
    settings, spelled = nest_loss_weights(settings, source)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in settings:
        if key not in known:
            raise IecastError(f"{source}: unknown setting {key!r}")
    changes = {k: _coerce(k, v, source) for k, v in settings.items() if k != "losses"}
    if "losses" in settings:
        changes["losses"] = dataclasses.replace(config.losses, **{
            name: _coerce(spelled[f"losses.{name}"], v, source, float) for name, v in settings["losses"].items()})
    if spellings is not None:
        spellings.update(spelled)
    return dataclasses.replace(config, **changes)


def read_config_file(path: str | Path) -> dict:
    """Settings from a .toml, .yaml/.yml or .json file (flat keys, or a [train] table; loss weights
    in a [losses] table or as flat loss_* keys)."""
    path = Path(path)
    if not path.is_file():
        raise IecastError(f"{path}: no such config file")
    try:
        text = path.read_text()
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise IecastError(f"{path}: config must be .toml, .yaml or .json")
    except IecastError:
        raise
    except Exception as exc:
        raise IecastError(f"{path}: cannot parse config ({str(exc).splitlines()[0][:120]})") from exc
    if not isinstance(data, dict):
        raise IecastError(f"{path}: config must be a table of settings")
    return data.get("train", data)


def parse_override(text: str) -> tuple[str, typing.Any]:
    """'key=value' -> (key, value); the value is parsed as YAML-ish JSON when possible."""
    if "=" not in text:
        raise IecastError(f"override {text!r} must look like key=value")
    key, value = text.split("=", 1)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip().replace("-", "_"), parsed


def build_config(preset: str | None = None, file: str | Path | None = None, overrides: dict | None = None) -> TrainConfig:
    """Defaults, then a preset, then a config file, then overrides; validated."""
    config, spellings = TrainConfig(), {}
    if preset is not None:
        if preset not in PRESETS:
            raise IecastError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        config = apply_settings(config, PRESETS[preset], f"preset {preset}", spellings)
    if file is not None:
        config = apply_settings(config, read_config_file(file), str(file), spellings)
    if overrides:
        config = apply_settings(config, overrides, "command line", spellings)
    return config.validate(spellings)
