"""The training state committed for later sessions (checkpoints/iecontraast-vgg16-rms/) belongs to
the packaged default and, with it, warm-starts every trained part of a run exactly.

The stylizer half of that state is the packaged default itself (src/iecast/assets/default.safetensors);
the folder keeps only the discriminator and heads (`iecast.train.safetensors`), which a run picks
up with `--init-from default --init-training-state <that file>`. Superseded states and baselines
are in git history only (docs/training/README.md, "Superseded states")."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from iecast import weights
from iecast.cli import main as cli_main
from iecast.training.config import TrainConfig, apply_settings, build_config, nest_loss_weights
from iecast.errors import IecastError
from iecast.models.discriminator import MultiScaleDiscriminator
from iecast.training.checkpoints import find_training_state, warm_start
from iecast.training.losses import LossWeights
from iecast.training.model import IEContraASTModel
from iecast.weights import load_encoder, read_stylizer

CARRIED = Path(__file__).resolve().parents[2] / "checkpoints" / "iecontraast-vgg16-rms"
STATE = CARRIED / "iecast.train.safetensors"
PRESET, (H, CROP) = "cpu-small", (2, 128)
pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif("default" not in weights.PRETRAINED, reason="no default model registered"),
]


def _read_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}, dict(fh.metadata())


def _fresh(encoder: str) -> tuple[IEContraASTModel, MultiScaleDiscriminator]:
    config = build_config(PRESET, overrides={"content": ["x"], "style": ["y"], "encoder": encoder})
    return IEContraASTModel(load_encoder(config.encoder), config.transform, config.losses), MultiScaleDiscriminator()


def test_the_folder_holds_only_the_training_state():
    """No copy of the default beside it (issue #23): the stylizer half is the packaged file."""
    assert sorted(p.name for p in CARRIED.iterdir()) == ["README.md", "iecast.train.safetensors"]


def test_training_state_matches_the_packaged_default():
    shipped = weights.PRETRAINED["default"].path()  # checks the registered sha256
    tensors, meta = read_stylizer(shipped)
    extra, extra_meta = _read_state(STATE)
    trained = json.loads(meta["config"])
    assert extra_meta["format"] == "iecast-train-state"
    assert extra_meta["encoder"] == meta["encoder"] == weights.DEFAULT_ENCODER and meta["transform"] == "sanet"
    # exported from the same checkpoint: a run from 0, so its iteration is the default's total
    assert int(extra_meta.get("iterations_trained", extra_meta["iteration"])) == trained["iterations_trained"] > 0
    assert (trained["h"], trained["crop"]) == (H, CROP)
    assert {t.dtype for t in [*tensors.values(), *extra.values()]} == {torch.float16}
    assert {k.split(".")[0] for k in extra} == {"discriminator", "style_head", "content_head"}
    card = (CARRIED / "README.md").read_text()
    assert f"-> {trained['iterations_trained']}" in card and f"--preset {PRESET}" in card
    assert f"encoder={meta['encoder']}" in card
    assert "--init-from default --init-training-state checkpoints/iecontraast-vgg16-rms/iecast.train.safetensors" in card


def test_the_defaults_header_config_with_flat_loss_weights_still_loads():
    """The packaged default was trained before the loss weights were nested: its header keeps
    `loss_content`, ... keys, which map to `losses` (and the release's weights, which it used)."""
    header = json.loads(read_stylizer(weights.PRETRAINED["default"].path())[1]["config"])
    settings = {k: v for k, v in header.items() if k != "iterations_trained"}
    config = apply_settings(TrainConfig(), settings, "the default's header").validate()
    assert config.losses == LossWeights() and (config.h, config.crop) == (H, CROP)
    assert nest_loss_weights(header, "header")[0]["losses"] == dataclasses.asdict(LossWeights())


def test_warm_start_from_the_default_restores_every_part():
    tensors, meta = read_stylizer(weights.PRETRAINED["default"].path())
    extra, _ = _read_state(STATE)
    model, discriminator = _fresh(meta["encoder"])
    iterations = warm_start(model, discriminator, "default", meta["encoder"], training_state=STATE)
    assert iterations == json.loads(meta["config"])["iterations_trained"]
    for prefix, module in (("decoder", model.decoder), ("transform", model.transform)):
        for key, value in module.state_dict().items():
            assert torch.equal(value, tensors[f"{prefix}.{key}"].float()), key
    for prefix, module in (("discriminator", discriminator), ("style_head", model.style_head),
                           ("content_head", model.content_head)):
        params = module.state_dict()
        assert params and all(torch.equal(v, extra[f"{prefix}.{k}"].float()) for k, v in params.items()), prefix


def test_without_a_training_state_the_discriminator_starts_fresh(tmp_path, capsys):
    """The packaged default has no `.train.safetensors` beside it; a named file that is missing is an error."""
    shipped = weights.PRETRAINED["default"].path()
    assert find_training_state(shipped) is None
    assert find_training_state(shipped, STATE) == STATE
    encoder = read_stylizer(shipped)[1]["encoder"]
    model, discriminator = _fresh(encoder)
    before = {k: v.clone() for k, v in discriminator.state_dict().items()}
    warm_start(model, discriminator, "default", encoder)
    assert all(torch.equal(v, before[k]) for k, v in discriminator.state_dict().items())
    assert "without a training state" in capsys.readouterr().err  # said once, by warm_start
    warm_start(model, discriminator, "default", encoder, quiet=True)  # e.g. the other ranks of a run
    assert capsys.readouterr().err == ""
    with pytest.raises(IecastError, match="no such training state"):
        warm_start(model, discriminator, "default", encoder, training_state=tmp_path / "missing.train.safetensors")


@pytest.mark.parametrize("change, message", [({"encoder": "vgg16-imagenet-offline-normalised"}, "training state of a model with encoder"),
                                             ({"iterations_trained": "1"}, "not one model's")])
def test_warm_start_refuses_another_models_training_state(tmp_path, change, message):
    extra, meta = _read_state(STATE)
    other = tmp_path / "other.train.safetensors"
    save_file(extra, str(other), metadata={**meta, **change})
    encoder = read_stylizer(weights.PRETRAINED["default"].path())[1]["encoder"]
    model, discriminator = _fresh(encoder)
    with pytest.raises(IecastError, match=message):
        warm_start(model, discriminator, "default", encoder, training_state=other)


def test_cli_passes_the_training_state_and_needs_init_from(monkeypatch):
    import iecast.training.loop

    seen = []
    monkeypatch.setattr(iecast.training.loop, "train", seen.append)
    common = ["train", "--preset", PRESET, "--content", "c", "--style", "s"]
    assert cli_main([*common, "--init-from", "default", "--init-training-state", str(STATE)]) == 0
    assert (seen[0].init_from, seen[0].init_training_state) == ("default", str(STATE))
    with pytest.raises(IecastError, match="init_training_state needs init_from"):
        build_config(PRESET, overrides={"content": ["c"], "style": ["s"], "init_training_state": str(STATE)})
