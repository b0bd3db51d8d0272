"""The training state committed for the next session (checkpoints/cpu-small-vgg16/) is intact and
warm-starts every trained part of a cpu-small run exactly."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from iecast.config import build_config
from iecast.models.discriminator import MultiScaleDiscriminator
from iecast.train import IEContraASTModel, training_state_path, warm_start
from iecast.weights import DEFAULT_ENCODER, load_encoder, read_stylizer

STATE = Path(__file__).resolve().parents[1] / "checkpoints" / "cpu-small-vgg16" / "iecast.safetensors"
pytestmark = pytest.mark.usefixtures("one_thread")


def test_committed_state_warm_starts_every_part():
    tensors, meta = read_stylizer(STATE)
    extra = load_file(str(training_state_path(STATE)))
    assert meta["encoder"] == DEFAULT_ENCODER and meta["transform"] == "sanet"
    assert {t.dtype for t in [*tensors.values(), *extra.values()]} == {torch.float16}
    trained = json.loads(meta["config"])
    assert trained["iterations_trained"] > 0 and (trained["h"], trained["crop"]) == (2, 128)
    assert f"0 -> {trained['iterations_trained']}" in (STATE.parent / "README.md").read_text()

    config = build_config("cpu-small", overrides={"content": ["x"], "style": ["y"]})
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
