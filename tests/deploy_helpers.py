"""Helpers for the export and serve tests: a random-init stylizer whose output spans [0, 1]."""
from __future__ import annotations

from pathlib import Path

import torch

from iecast.models.network import StyleTransferNetwork
from iecast.models.transform import build_transform
from iecast.weights import DEFAULT_ENCODER, load_encoder, save_stylizer


TARGET_STD = 0.1  # gives stylized outputs with std ~0.28, ~85% of values inside (0, 1)


def random_network(seed: int = 0) -> StyleTransferNetwork:
    """SANet network with random transform/decoder on the offline encoder. The decoder's last
    layer is rescaled so outputs are O(1) (mostly inside (0, 1)) instead of ~0.02, so absolute
    tolerances mean something."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    network = StyleTransferNetwork(load_encoder(DEFAULT_ENCODER), build_transform("sanet")).eval()
    last = network.decoder.layers[-1]
    with torch.no_grad():
        probe = network(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))
        mean, std = probe.mean(dim=(0, 2, 3)), probe.std(dim=(0, 2, 3))
        scale = TARGET_STD / std
        last.weight.mul_(scale.view(-1, 1, 1, 1))
        last.bias.copy_(0.5 - (mean - last.bias) * scale)
    torch.random.set_rng_state(generator_state)
    return network


def save_random_stylizer(path: Path, seed: int = 0) -> Path:
    return save_stylizer(path, random_network(seed), DEFAULT_ENCODER, {"note": "random init, for tests"})
