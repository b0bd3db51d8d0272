"""Training checkpoints do not depend on where iecast's modules live.

A `.pt` checkpoint is a plain dict of tensors and builtins (the config as `TrainConfig.to_dict()`,
never the dataclass) read with `torch.load(weights_only=True)`, so the move from `iecast.train`
and `iecast.config` to `iecast.training.*` cannot break files written before it. Stylizer and
training-state files are safetensors (tensors + string metadata), which pickle nothing.
"""
from __future__ import annotations

import pickle
import zipfile

import torch

from iecast.models import Decoder
from iecast.training.checkpoints import CHECKPOINT_FORMAT, read_checkpoint, rng_state, save_checkpoint
from iecast.training.config import build_config


class _Anything(dict):
    """Stands in for every pickled class and function: callable, and accepts any state."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def __setstate__(self, state):
        pass


class _RecordingUnpickler(pickle.Unpickler):
    """Lists every class/function a pickle names (by module path) without importing any of them."""

    def __init__(self, fh):
        super().__init__(fh)
        self.globals: list[tuple[str, str]] = []

    def find_class(self, module, name):
        self.globals.append((module, name))
        return _Anything

    def persistent_load(self, pid):
        return None


def pickled_globals(path) -> list[tuple[str, str]]:
    with zipfile.ZipFile(path) as archive:
        data = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
        with archive.open(data) as fh:
            unpickler = _RecordingUnpickler(fh)
            unpickler.load()
    return unpickler.globals


def test_checkpoints_pickle_no_iecast_class(tmp_path):
    config = build_config("cpu-small", overrides={"content": ["c"], "style": ["s"], "out_dir": str(tmp_path)})
    decoder = Decoder()
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-4)
    decoder(torch.rand(1, 512, 4, 4)).mean().backward()
    optimizer.step()
    state = {"format": CHECKPOINT_FORMAT, "iecast_version": "0.1.0", "iteration": 1, "base_iterations": 0,
             "encoder": config.encoder, "config": config.to_dict(), "rng": rng_state(), "g_opt": optimizer.state_dict(),
             "decoder": decoder.state_dict()}
    path = save_checkpoint(tmp_path / "ckpt_00000001.pt", state)

    modules = {module for module, _ in pickled_globals(path)}
    assert modules and not [m for m in modules if m.split(".")[0] == "iecast"], modules
    loaded = read_checkpoint(path)
    assert loaded["config"] == config.to_dict() and isinstance(loaded["config"], dict)
    assert all(torch.equal(loaded["decoder"][k], v) for k, v in decoder.state_dict().items())
