"""The training state committed for the next session (checkpoints/iecontraast-vgg16/) is intact and
warm-starts every trained part of a run exactly.

It was trained with Gatys' mean-normalised VGG-16, before the RMS-normalised encoder became
the default, so a run that continues it must name that encoder (its card says so)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from iecast.config import build_config
from iecast.models.discriminator import MultiScaleDiscriminator
from iecast.train import IEContraASTModel, training_state_path, warm_start
from iecast.weights import load_encoder, read_stylizer

STATE = Path(__file__).resolve().parents[1] / "checkpoints" / "iecontraast-vgg16" / "iecast.safetensors"
STATE_ENCODER = "vgg16-imagenet-offline-normalised"
pytestmark = pytest.mark.usefixtures("one_thread")


def test_committed_state_warm_starts_every_part():
    tensors, meta = read_stylizer(STATE)
    extra = load_file(str(training_state_path(STATE)))
    assert meta["encoder"] == STATE_ENCODER and meta["transform"] == "sanet"
    assert {t.dtype for t in [*tensors.values(), *extra.values()]} == {torch.float16}
    trained = json.loads(meta["config"])
    assert trained["iterations_trained"] > 0 and (trained["h"], trained["crop"]) == (6, 256)
    card = (STATE.parent / "README.md").read_text()
    assert f"0 -> {trained['iterations_trained']}" in card and f"encoder={STATE_ENCODER}" in card

    config = build_config("paper", overrides={"content": ["x"], "style": ["y"], "encoder": STATE_ENCODER})
    model = IEContraASTModel(load_encoder(config.encoder), config.transform, config.loss_weights())
    discriminator = MultiScaleDiscriminator()
    warm_start(model, discriminator, str(STATE), config.encoder)
    parts = {"decoder": model.decoder, "transform": model.transform}
    for prefix, module in parts.items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, tensors[f"{prefix}.{key}"].float()), key
    for prefix, module in (("discriminator", discriminator), ("style_head", model.style_head),
                           ("content_head", model.content_head)):
        state = module.state_dict()
        assert state and all(torch.equal(v, extra[f"{prefix}.{k}"].float()) for k, v in state.items()), prefix


def test_baselines_were_trained_to_the_same_budget():
    """benchmarks/models/ holds the SANet ablation and the AdaIN baseline at the carried
    IEContraAST state's iteration count, trained with the same data, encoder and preset."""
    _, main = read_stylizer(STATE)
    main_config = json.loads(main["config"])
    models = Path(__file__).resolve().parents[1] / "benchmarks" / "models"
    for name, transform in (("sanet", "sanet"), ("adain", "adain")):
        tensors, meta = read_stylizer(models / f"{name}-{main_config['iterations_trained']}.safetensors")
        config = json.loads(meta["config"])
        assert meta["encoder"] == main["encoder"] and meta["transform"] == transform
        assert {t.dtype for t in tensors.values()} == {torch.float16}
        for key in ("iterations_trained", "content", "style", "h", "crop", "resize", "lr", "seed", "precision"):
            assert config[key] == main_config[key], key
        if name == "sanet":
            assert config["loss_adversarial"] == config["loss_contrastive_content"] == config["loss_contrastive_style"] == 0
            assert main_config["loss_adversarial"] > 0 and main_config["loss_contrastive_content"] > 0
