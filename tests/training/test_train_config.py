"""Training settings: every numeric field's range is checked with the other config errors, as one
line before anything is built (issue 22, defect 7), and `precision="auto"` resolves to bf16-mixed
only where the hardware computes bf16 natively (issue 21, item 4). No training runs here."""
from __future__ import annotations

import dataclasses
import math

import pytest

from iecast import IecastError
from iecast.cli import main
from iecast.training.config import FLOAT_RULES, INT_RANGES, PRESETS, TrainConfig, build_config, parse_override
from iecast.training.losses import LossWeights

DATA = {"content": ["x"], "style": ["y"]}

# (setting, bad value, words the message must contain)
BAD_NUMBERS = [
    ("lr", math.nan, "lr must be a finite number"),
    ("lr", math.inf, "lr must be a finite number"),
    ("lr", -1e-4, "lr must be >= 0"),
    ("d_lr", math.nan, "d_lr must be a finite number"),
    ("d_lr", -0.1, "d_lr must be >= 0"),
    ("lr_decay", -5e-5, "lr_decay must be >= 0"),
    ("lr_decay", math.inf, "lr_decay must be a finite number"),
    ("d_beta1", 1.0, "d_beta1 must be in [0, 1)"),
    ("d_beta1", -0.5, "d_beta1 must be in [0, 1)"),
    ("d_beta2", 1.5, "d_beta2 must be in [0, 1)"),
    ("d_beta2", math.nan, "d_beta2 must be a finite number"),
    ("temperature", 0.0, "temperature must be > 0"),
    ("temperature", -0.2, "temperature must be > 0"),
    ("temperature", math.nan, "temperature must be a finite number"),
    ("loss_content", -1.0, "loss_content must be >= 0"),
    ("loss_style", math.nan, "loss_style must be a finite number"),
    ("loss_identity_pixel", math.inf, "loss_identity_pixel must be a finite number"),
    ("loss_identity_feature", -1.0, "loss_identity_feature must be >= 0"),
    ("loss_contrastive_content", -0.3, "loss_contrastive_content must be >= 0"),
    ("loss_contrastive_style", math.nan, "loss_contrastive_style must be a finite number"),
    ("loss_adversarial", -5.0, "loss_adversarial must be >= 0"),
    ("losses.content", -1.0, "losses.content must be >= 0"),  # named as the user spelled it
    ("losses.adversarial", math.inf, "losses.adversarial must be a finite number"),
    ("iterations", 0, "iterations must be >= 1"),
    ("h", 1, "h must be >= 2"),
    ("h", 100_000, "h must be <= 4096"),
    ("resize", 16, "resize must be >= 32"),
    ("resize", 100_000, "resize must be <= 16384"),
    ("crop", 0, "crop must be >= 32"),
    ("workers", -1, "workers must be >= 0"),
    ("seed", -3, "seed must be >= 0"),
    ("seed", 2**64, "seed must be <="),
    ("devices", 0, "devices must be >= 1"),
    ("num_nodes", 0, "num_nodes must be >= 1"),
    ("checkpoint_every", 0, "checkpoint_every must be >= 1"),
    ("keep_checkpoints", -2, "keep_checkpoints must be >= 1"),
    ("log_every", 0, "log_every must be >= 1"),
    ("image_every", 0, "image_every must be >= 1"),
]


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert excinfo.type is IecastError and message and "\n" not in message, message
    return message


@pytest.mark.parametrize(("name", "value", "expected"), BAD_NUMBERS, ids=[f"{n}={v}" for n, v, _ in BAD_NUMBERS])
def test_out_of_range_numbers_are_one_line_errors(name, value, expected):
    with pytest.raises(IecastError) as err:
        build_config("cpu-small", overrides={**DATA, name: value})
    assert expected in one_line(err)


def test_every_numeric_field_has_a_rule_and_the_presets_pass():
    ints = {f.name for f in dataclasses.fields(TrainConfig) if f.type == "int"}
    floats = {f.name for f in dataclasses.fields(TrainConfig) if f.type == "float"}
    floats |= {f"losses.{f.name}" for f in dataclasses.fields(LossWeights)}  # the nested loss weights
    assert ints == set(INT_RANGES) and floats == set(FLOAT_RULES)
    for preset in PRESETS:
        build_config(preset, overrides=DATA)
    # the edges that are allowed: a frozen warm start (lr 0), beta1 0, no adversarial loss
    config = build_config("cpu-small", overrides={**DATA, "lr": 0.0, "d_lr": 0.0, "lr_decay": 0.0, "d_beta1": 0.0,
                                                   "loss_adversarial": 0.0, "workers": 0, "seed": 2**63 - 1})
    assert (config.lr, config.d_beta1, config.seed) == (0.0, 0.0, 2**63 - 1)


def test_validate_catches_values_set_in_code():
    """`train(config)` validates too: a config built in Python, bypassing the parser, is checked."""
    bad = dataclasses.replace(TrainConfig(**DATA), lr=float("nan"))
    with pytest.raises(IecastError, match="lr must be a finite number"):
        bad.validate()
    with pytest.raises(IecastError, match="h must be an integer"):
        dataclasses.replace(TrainConfig(**DATA), h=2.5).validate()
    with pytest.raises(IecastError, match="losses.content must be >= 0"):
        dataclasses.replace(TrainConfig(**DATA), losses=LossWeights(content=-1.0)).validate()


def test_config_file_values_are_checked(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[train]\nlr = nan\nh = 2\n")
    with pytest.raises(IecastError) as err:
        build_config(file=path, overrides=DATA)
    assert "lr must be a finite number" in one_line(err)
    path = tmp_path / "run.yaml"
    path.write_text("d_beta2: 1.0\n")
    with pytest.raises(IecastError, match=r"d_beta2 must be in \[0, 1\)"):
        build_config(file=path, overrides=DATA)


@pytest.mark.parametrize("override", ["lr=nan", "lr=-0.001", "d_lr=NaN", "temperature=0", "d_beta1=1", "loss_style=-1",
                                      "losses.style=-1", "losses.content=abc", "seed=-1", "workers=-2"])
def test_cli_bad_numbers_are_one_line_exit_1(tmp_path, capsys, override):
    out = tmp_path / "run"
    code = main(["train", "--preset", "cpu-small", "--content", str(tmp_path), "--style", str(tmp_path),
                 "--out", str(out), override])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("iecast: error: "), err
    assert parse_override(override)[0] in lines[0]
    assert not out.exists()  # nothing was created


# ----------------------------------------------------------------------------- nested loss weights

def test_loss_weights_nested_or_flat_give_equal_configs(tmp_path):
    """One field, `losses`: `losses.content=10` and the older `loss_content=10`, on the command line
    or in a file (a [losses] table, a YAML mapping, flat keys), all set the same weight."""
    assert TrainConfig().losses == LossWeights() and TrainConfig().to_dict()["losses"] == dataclasses.asdict(LossWeights())
    assert not [k for k in TrainConfig().to_dict() if k.startswith("loss_")]
    expected = dataclasses.replace(build_config("cpu-small", overrides=DATA),
                                   losses=LossWeights(content=10.0, adversarial=0.0))
    spellings = [["loss_content=10", "loss_adversarial=0"], ["losses.content=10", "losses.adversarial=0"],
                 ["loss_content=10", "losses.adversarial=0"], ['losses={"content": 10, "adversarial": 0}']]
    for texts in spellings:
        assert build_config("cpu-small", overrides={**DATA, **dict(map(parse_override, texts))}) == expected, texts
    files = {"nested.toml": "[train]\nh = 2\n[train.losses]\ncontent = 10\nadversarial = 0\n",
             "top.toml": "h = 2\n[losses]\ncontent = 10\nadversarial = 0\n",
             "flat.toml": "loss_content = 10\nloss_adversarial = 0\n",
             "nested.yaml": "losses:\n  content: 10\n  adversarial: 0\n",
             "flat.yaml": "train:\n  loss_content: 10\n  loss_adversarial: 0.0\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        assert build_config("cpu-small", tmp_path / name, DATA) == expected, name
    # a later source overrides an earlier one whichever spelling each uses
    assert build_config("cpu-small", tmp_path / "flat.toml", {**DATA, "losses.content": 2}).losses.content == 2.0
    assert build_config("cpu-small", tmp_path / "nested.yaml", {**DATA, "loss_content": 3}).losses.content == 3.0


def test_a_loss_weight_given_twice_is_one_line_error(tmp_path, capsys):
    with pytest.raises(IecastError) as err:
        build_config("cpu-small", overrides={**DATA, "loss_content": 10, "losses.content": 2})
    assert "loss weight content is given twice (loss_content and losses.content)" in one_line(err)
    path = tmp_path / "both.toml"
    path.write_text("loss_style = 2\n[losses]\nstyle = 3\n")
    with pytest.raises(IecastError) as err:
        build_config("cpu-small", path, DATA)
    assert one_line(err).startswith(f"{path}: the loss weight style is given twice")
    for bad, words in ((["losses.gram=1"], "unknown setting 'losses.gram'"), (["loss_gram=1"], "unknown setting 'loss_gram'"),
                       (["losses=3"], "losses must be a table of loss weights"),
                       (["loss_adversarial=1", "losses.adversarial=1"], "given twice")):
        code = main(["train", "--preset", "cpu-small", "--content", str(tmp_path), "--style", str(tmp_path),
                     "--out", str(tmp_path / "run"), *bad])
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and words in lines[0], lines


# ----------------------------------------------------------------------------- precision auto

def test_auto_resolves_by_native_bf16(monkeypatch):
    import iecast.hardware
    from iecast.training.loop import precision_note, resolve_train_precision

    asked = []

    def fake(answer):
        def native_bf16(device):
            asked.append(str(device))
            return answer
        return native_bf16

    monkeypatch.setattr(iecast.hardware, "native_bf16", fake(False))
    assert resolve_train_precision("auto", "cpu") == "32-true"
    assert "no native bf16 on cpu" in precision_note("auto", "32-true", "cpu")
    monkeypatch.setattr(iecast.hardware, "native_bf16", fake(True))
    assert resolve_train_precision("auto", "cpu") == "bf16-mixed"
    assert precision_note("auto", "bf16-mixed", "cpu") == "iecast: training precision bf16-mixed (auto: cpu has native bf16)"
    assert asked[0] == "cpu"
    for fixed in ("32-true", "bf16-mixed", "16-mixed", "bf16-true"):  # only "auto" is resolved
        assert resolve_train_precision(fixed, "cpu") == fixed
    monkeypatch.setattr(iecast.hardware, "native_bf16", fake(False))
    assert "emulated and slower" in precision_note("bf16-mixed", "bf16-mixed", "cpu")


def test_auto_asks_about_the_device_fabric_will_use(monkeypatch):
    import torch

    from iecast.training.loop import training_device_type

    assert training_device_type("cpu") == "cpu" and training_device_type("gpu") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert training_device_type("auto") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert training_device_type("auto") in ("cpu", "mps")


def test_cpu_small_uses_auto_and_auto_is_a_valid_setting():
    assert build_config("cpu-small", overrides=DATA).precision == "auto"
    assert build_config("paper", overrides={**DATA, "precision": "auto"}).precision == "auto"
    with pytest.raises(IecastError, match="precision must be one of auto"):
        build_config("paper", overrides={**DATA, "precision": "fp8"})
