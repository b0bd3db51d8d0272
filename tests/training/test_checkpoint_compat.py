"""Training checkpoints do not depend on where iecast's modules live.

A `.pt` checkpoint is a plain dict of tensors and builtins (the config as `TrainConfig.to_dict()`,
never the dataclass) read with `torch.load(weights_only=True)`, so the move from `iecast.train`
and `iecast.config` to `iecast.training.*` cannot break files written before it. Stylizer and
training-state files are safetensors (tensors + string metadata), which pickle nothing.
"""
from __future__ import annotations

import json
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


def _flat(config_dict: dict) -> dict:
    """A config as checkpoints before the nested `losses` field stored it: `loss_content`, ... keys."""
    flat = {k: v for k, v in config_dict.items() if k != "losses"}
    return {**flat, **{f"loss_{name}": value for name, value in config_dict["losses"].items()}}


def test_a_checkpoint_with_flat_loss_weights_resumes_and_exports_nested(tmp_path):
    """Checkpoints (and the packaged default's header) written before the loss weights were nested
    keep `loss_*` keys: such a config still loads into an equal TrainConfig, the run resumes from
    the checkpoint, and its export records the weights nested."""
    from iecast.models import build_transform
    from iecast.training.checkpoints import export_checkpoint
    from iecast.training.config import TrainConfig, apply_settings
    from iecast.training.loop import find_resume_state
    from iecast.weights import read_stylizer

    config = build_config("cpu-small", overrides={"content": ["c"], "style": ["s"], "out_dir": str(tmp_path),
                                                  "loss_adversarial": 0, "losses.content": 2, "resume": "auto"})
    assert (config.losses.content, config.losses.adversarial) == (2.0, 0.0)
    old = _flat(config.to_dict())
    assert apply_settings(TrainConfig(), old, "old checkpoint") == config
    state = {"format": CHECKPOINT_FORMAT, "iecast_version": "0.1.0", "iteration": 3, "base_iterations": 0,
             "encoder": config.encoder, "config": old, "rng": rng_state(),
             "decoder": Decoder().state_dict(), "transform": build_transform(config.transform).state_dict()}
    path = save_checkpoint(tmp_path / "checkpoints" / "ckpt_00000003.pt", state)

    resumed, resumed_path = find_resume_state(config, tmp_path)
    assert resumed_path == path and resumed["config"] == old and resumed["iteration"] == 3
    meta = read_stylizer(export_checkpoint(path, tmp_path / "model.safetensors"))[1]
    header = json.loads(meta["config"])
    assert header["losses"] == config.to_dict()["losses"] and not [k for k in header if k.startswith("loss_")]
    assert header == {**config.to_dict(), "iterations_trained": 3}
