"""The learning-rate schedule: inverse-time decay over every iteration the model has trained, times
a linear warm-up at the start of the run."""
import pytest
import torch

from iecast import IecastError
from iecast.training.config import TrainConfig, build_config
from iecast.training.loop import _Parts, _set_learning_rates


def _parts(base_iterations: int) -> _Parts:
    g_opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    d_opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return _Parts(model=None, discriminator=None, g_opt=g_opt, d_opt=d_opt, base_iterations=base_iterations)


def test_warm_start_continues_the_decay():
    config = TrainConfig(lr=2e-4, d_lr=1e-4, lr_decay=1e-3)
    parts = _parts(base_iterations=1000)
    scale = _set_learning_rates(config, parts, 0)
    assert abs(scale - 0.5) < 1e-12  # 1 / (1 + 1e-3 * 1000)
    assert abs(parts.g_opt.param_groups[0]["lr"] - 1e-4) < 1e-15
    assert abs(parts.d_opt.param_groups[0]["lr"] - 5e-5) < 1e-15


def test_warm_up_ramps_linearly_then_hands_over_to_the_decay():
    config = TrainConfig(lr=1e-4, lr_decay=1e-3, lr_warmup=4)
    parts = _parts(base_iterations=0)
    scales = [_set_learning_rates(config, parts, i) for i in range(6)]
    decay = [1 / (1 + 1e-3 * i) for i in range(6)]
    expected = [decay[0] * 0.25, decay[1] * 0.5, decay[2] * 0.75, decay[3], decay[4], decay[5]]
    assert all(abs(a - b) < 1e-12 for a, b in zip(scales, expected))


def test_lr_warmup_must_not_be_negative():
    with pytest.raises(IecastError, match="lr_warmup"):
        build_config("cpu-small", overrides={"content": ["x"], "style": ["y"], "lr_warmup": -1})
