"""The bf16-mixed training step's shortcuts compute what the plain step computes: padding keeps
its dtype under autocast, the frozen encoder is cast once, and the MSE terms run over channels_last
maps in memory order. Inputs stay small: forced bf16 is slow on CPUs without native support."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from iecast.models import VGGEncoder
from iecast.models.functional import pad
from iecast.training.config import build_config
from iecast.training.losses import LossWeights, mse, total_generator_loss
from iecast.training.loop import _build_parts
from iecast.training.model import IEContraASTModel

CL = torch.channels_last


@pytest.mark.parametrize("mode", ["reflect", "replicate", "constant"])
def test_pad_keeps_bf16_under_autocast_and_moves_the_same_values(mode):
    x = torch.randn(2, 5, 7, 9).to(torch.bfloat16).contiguous(memory_format=CL)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        widened = F.pad(x, (1, 2, 1, 0), mode=mode)  # what autocast does to a bare F.pad
        kept = pad(x, (1, 2, 1, 0), mode)
    assert kept.dtype == torch.bfloat16
    assert torch.equal(kept.float(), widened.float())
    assert torch.equal(pad(x, (1, 2, 1, 0), mode), F.pad(x, (1, 2, 1, 0), mode=mode))  # no autocast: F.pad itself


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_mse_over_channels_last_maps_equals_f_mse_loss(dtype):
    g = torch.Generator().manual_seed(0)
    a0 = torch.randn(2, 8, 12, 10, generator=g).to(dtype).contiguous(memory_format=CL)
    b = torch.randn(2, 8, 12, 10, generator=g).to(dtype).contiguous(memory_format=CL)
    results = []
    for fn in (F.mse_loss, mse):
        a = a0.clone().requires_grad_()
        loss = fn(a, b)
        loss.backward()
        results.append((loss.detach(), a.grad))
    (ref, ref_grad), (got, got_grad) = results
    assert torch.equal(got, ref) and torch.equal(got_grad, ref_grad)
    assert got_grad.is_contiguous(memory_format=CL)
    flat_a, flat_b = a0.float().flatten(), b.float().flatten()
    assert got.item() == pytest.approx(((flat_a - flat_b) ** 2).mean().item(), rel=1e-2 if dtype == torch.bfloat16 else 1e-5)


def _step(model: IEContraASTModel, contents: torch.Tensor, styles: torch.Tensor) -> tuple[dict, dict]:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, terms = model(contents, styles)
        total = total_generator_loss(terms, model.weights)
    total.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach() for k, v in terms.items()}, grads


def test_casting_the_frozen_encoder_once_changes_nothing_under_bf16_autocast():
    torch.manual_seed(0)
    fp32 = IEContraASTModel(VGGEncoder("vgg16"), "sanet", LossWeights(adversarial=0)).to(memory_format=CL)
    cast = copy.deepcopy(fp32)
    cast.encoder.to(torch.bfloat16)
    g = torch.Generator().manual_seed(1)
    contents = torch.rand(2, 3, 64, 64, generator=g).contiguous(memory_format=CL)
    styles = torch.rand(2, 3, 64, 64, generator=g).contiguous(memory_format=CL)
    (terms_a, grads_a), (terms_b, grads_b) = _step(fp32, contents, styles), _step(cast, contents, styles)
    assert terms_a.keys() == terms_b.keys() and len(terms_a) == 6
    for k in terms_a:
        assert torch.equal(terms_a[k], terms_b[k]), k
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 20
    for k in grads_a:
        assert grads_a[k] is not None and torch.equal(grads_a[k], grads_b[k]), k


@pytest.mark.parametrize("precision, dtype", [("bf16-mixed", torch.bfloat16), ("32-true", torch.float32)])
def test_trainer_casts_only_the_frozen_encoder_for_mixed_precision(precision, dtype):
    config = build_config("cpu-small", overrides={"content": ["x"], "style": ["y"], "precision": precision,
                                                   "losses.adversarial": 0})
    parts = _build_parts(None, config, config.losses, None)
    assert {p.dtype for p in parts.model.encoder.parameters()} == {dtype}
    trained = [p for p in parts.model.parameters() if p.requires_grad]
    assert trained and all(p.dtype == torch.float32 for p in trained)  # fp32 master weights for Adam
