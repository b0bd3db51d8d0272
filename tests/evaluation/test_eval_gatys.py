"""Gatys et al. baseline: it lowers its own objective, reproducibly, at tiny sizes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from iecast import IecastError
from iecast.evaluation.gatys import GatysConfig, GatysStylizer, gatys_objective, gatys_stylize
from iecast.evaluation.metrics import gram_matrix


@pytest.fixture(scope="module")
def encoder():
    from iecast.weights import load_encoder

    return load_encoder("vgg16-imagenet-offline-normalised")


def images(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    content = F.interpolate(torch.rand(1, 3, 6, 6, generator=g), size=(32, 32), mode="bicubic").clamp(0, 1)
    style = torch.rand(1, 3, 32, 32, generator=g)
    return content, style


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_gatys_lowers_its_objective(encoder, optimizer):
    content, style = images()
    config = GatysConfig(steps=5, optimizer=optimizer, learning_rate=0.05 if optimizer == "adam" else None)
    out, history = gatys_stylize(content, style, encoder, config)
    if optimizer == "adam":
        assert len(history) == config.steps + 1
    else:
        assert config.learning_rate == 1.0 and 2 <= len(history) <= 2 * config.steps + 1
    assert history[-1] < 0.8 * history[0]
    assert out.shape == content.shape and 0 <= float(out.min()) and float(out.max()) <= 1
    # the recorded final value is the objective of the returned image, recomputed independently
    with torch.no_grad():
        target = encoder(content)["relu4_1"]
        grams = {t: gram_matrix(f) for t, f in encoder(style).items()}
        content_term, style_term = gatys_objective(encoder(out), target, grams, config)
    assert history[-1] == pytest.approx(float(content_term + config.style_weight * style_term), rel=1e-4)


def test_gatys_from_content_starts_at_zero_content_term_and_is_seeded(encoder):
    content, style = images(1)
    zero_steps = gatys_stylize(content, style, encoder, GatysConfig(steps=0))[0]
    assert torch.equal(zero_steps, content)
    noise_a = gatys_stylize(content, style, encoder, GatysConfig(steps=1, init="noise", seed=3))[0]
    noise_b = gatys_stylize(content, style, encoder, GatysConfig(steps=1, init="noise", seed=3))[0]
    noise_c = gatys_stylize(content, style, encoder, GatysConfig(steps=1, init="noise", seed=4))[0]
    assert torch.equal(noise_a, noise_b) and not torch.equal(noise_a, noise_c)


def test_gatys_stylizer_works_under_no_grad(encoder):
    content, style = images(2)
    config = GatysConfig(steps=3)  # L-BFGS's first step is tiny: 3 steps move the image measurably
    with torch.no_grad():
        out = GatysStylizer(encoder, config).stylize(content, style)
    assert out.shape == content.shape and out.dtype == content.dtype
    assert torch.isfinite(out).all() and 0 <= float(out.min()) and float(out.max()) <= 1
    assert (out - content).abs().mean() > 5e-3  # it moved away from the content
    # the same image as an optimisation run with gradients enabled
    assert torch.equal(out, gatys_stylize(content, style, encoder, config)[0])

    def style_term(image):  # Gram MSE over every tap, from the encoder directly (not gatys_objective)
        with torch.no_grad():
            feats, targets = encoder(image), encoder(style)
        return sum(float(F.mse_loss(gram_matrix(feats[t]), gram_matrix(targets[t]))) for t in config.style_taps)

    assert style_term(out) < 0.5 * style_term(content)  # towards the style


def test_gatys_bad_settings_are_one_line_errors(encoder):
    with pytest.raises(IecastError, match="steps"):
        GatysConfig(steps=-1)
    with pytest.raises(IecastError, match="init"):
        GatysConfig(init="zeros")
    with pytest.raises(IecastError, match="optimizer"):
        GatysConfig(optimizer="sgd")
    with pytest.raises(IecastError, match="one content and one style"):
        gatys_stylize(torch.rand(2, 3, 32, 32), torch.rand(1, 3, 32, 32), encoder)
