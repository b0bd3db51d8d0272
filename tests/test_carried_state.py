"""The training states committed for later sessions (checkpoints/*/) are intact and warm-start
every trained part of a run exactly.

`iecontraast-vgg16` (GPU, `paper` preset) was trained with Gatys' mean-normalised VGG-16,
before the RMS-normalised encoder became the default, so a run that continues it must name
that encoder (its card says so). `iecontraast-vgg16-rms` (CPU, `cpu-small`) uses the
RMS-normalised one, the default since."""
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

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
STATE = CHECKPOINTS / "iecontraast-vgg16" / "iecast.safetensors"
STATES = {  # directory: (encoder, preset, (h, crop))
    "iecontraast-vgg16": ("vgg16-imagenet-offline-normalised", "paper", (6, 256)),
    "iecontraast-vgg16-rms": ("vgg16-imagenet-offline-rms", "cpu-small", (2, 128)),
}
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", sorted(STATES))
def test_committed_state_warm_starts_every_part(name):
    encoder, preset, (h, crop) = STATES[name]
    state = CHECKPOINTS / name / "iecast.safetensors"
    tensors, meta = read_stylizer(state)
    extra = load_file(str(training_state_path(state)))
    assert meta["encoder"] == encoder and meta["transform"] == "sanet"
    assert {t.dtype for t in [*tensors.values(), *extra.values()]} == {torch.float16}
    trained = json.loads(meta["config"])
    assert trained["iterations_trained"] > 0 and (trained["h"], trained["crop"]) == (h, crop)
    card = (state.parent / "README.md").read_text()
    assert f"-> {trained['iterations_trained']}" in card and f"--preset {preset}" in card
    assert f"encoder={encoder}" in card

    config = build_config(preset, overrides={"content": ["x"], "style": ["y"], "encoder": encoder})
    model = IEContraASTModel(load_encoder(config.encoder), config.transform, config.loss_weights())
    discriminator = MultiScaleDiscriminator()
    warm_start(model, discriminator, str(state), config.encoder)
    parts = {"decoder": model.decoder, "transform": model.transform}
    for prefix, module in parts.items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, tensors[f"{prefix}.{key}"].float()), key
    for prefix, module in (("discriminator", discriminator), ("style_head", model.style_head),
                           ("content_head", model.content_head)):
        params = module.state_dict()
        assert params and all(torch.equal(v, extra[f"{prefix}.{k}"].float()) for k, v in params.items()), prefix


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
