"""A stylizer file is not trusted: every header field the loader reads and every weight is checked
when it is loaded, and a bad file is one `iecast: error:` line naming it, exit status 1 and no
output (issue 22, defect 6). The bad files are made from the packaged default model."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from iecast import IecastError
from iecast.cli import main
from iecast.weights import PRETRAINED, load_stylizer, read_stylizer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def default_file() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = PRETRAINED["default"].local_path()
    if path is None:
        pytest.skip("the packaged default model is not installed")
    with safe_open(str(path), framework="pt") as fh:  # raw, so the test does not depend on the checks it tests
        return {k: fh.get_tensor(k) for k in fh.keys()}, dict(fh.metadata())


def write(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> Path:
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=meta)
    return path


def poisoned(tensors: dict[str, torch.Tensor], name: str, value: float) -> dict[str, torch.Tensor]:
    out = dict(tensors)
    bad = out[name].clone()
    bad.view(-1)[7] = value
    out[name] = bad
    return out


def bad_files(tmp_path: Path, tensors, meta) -> dict[str, tuple[Path, str]]:
    """name -> (file, a word the error must contain)."""
    first = sorted(k for k in tensors if k.startswith("decoder."))[0]
    last = sorted(k for k in tensors if k.startswith("transform."))[-1]
    cases = {
        "unknown_transform": ({**meta, "transform": "swin"}, tensors, "'swin'"),
        "unknown_encoder": ({**meta, "encoder": "resnet50"}, tensors, "'resnet50'"),
        "future_version": ({**meta, "format_version": "9"}, tensors, "format version"),
        "config_not_json": ({**meta, "config": "{not json"}, tensors, "config"),
        "config_not_table": ({**meta, "config": "[1, 2]"}, tensors, "config"),
        "negative_resize": ({**meta, "config": json.dumps({"resize": -256})}, tensors, "resize"),
        "nan_weight": (meta, poisoned(tensors, first, float("nan")), "non-finite"),
        "inf_weight": (meta, poisoned(tensors, last, float("inf")), "non-finite"),
        "int_weights": (meta, {**tensors, first: tensors[first].to(torch.int32)}, "int32"),
        "stray_tensor": (meta, {**tensors, "extra.payload": torch.zeros(4)}, "extra.payload"),
    }
    return {name: (write(tmp_path / f"{name}.safetensors", t, m), word) for name, (m, t, word) in cases.items()}


def noise(path: Path, seed: int) -> Path:
    arr = np.random.default_rng(seed).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


def test_each_bad_file_is_one_error_naming_it(tmp_path, default_file):
    for name, (path, word) in bad_files(tmp_path, *default_file).items():
        with pytest.raises(IecastError) as err:
            load_stylizer(path)
        message = str(err.value)
        assert "\n" not in message and str(path) in message and word in message, (name, message)


def test_the_packaged_default_passes_the_checks(default_file, tmp_path):
    tensors, meta = read_stylizer(write(tmp_path / "copy.safetensors", *default_file))
    assert meta["transform"] == "sanet" and len(tensors) == len(default_file[0])


def test_cli_bad_model_file_is_one_line_exit_1_no_output(tmp_path, capsys, default_file):
    content, style = noise(tmp_path / "content.png", 1), noise(tmp_path / "style.png", 2)
    out_dir = tmp_path / "out"
    for name, (path, word) in bad_files(tmp_path, *default_file).items():
        out = out_dir / f"{name}.png"
        code = main(["stylize", "-c", str(content), "-s", str(style), "-o", str(out), "--weights", str(path),
                     "--style-size", "32", "--quiet"])
        err = capsys.readouterr().err
        assert code == 1, (name, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("iecast: error: ") and str(path) in lines[0], (name, err)
        assert not out.exists()
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_cli_subprocess_unknown_transform_and_nan_weights(tmp_path, default_file):
    """The reported reproductions, as a user runs them: no traceback, exit 1, nothing written."""
    content, style = noise(tmp_path / "content.png", 1), noise(tmp_path / "style.png", 2)
    files = bad_files(tmp_path, *default_file)
    for name in ("unknown_transform", "nan_weight"):
        out = tmp_path / f"{name}.png"
        proc = subprocess.run([sys.executable, "-m", "iecast.cli", "stylize", "-c", str(content), "-s", str(style),
                               "-o", str(out), "--weights", str(files[name][0]), "--style-size", "32", "--quiet"],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("iecast: error: ") and "Traceback" not in proc.stderr
        assert not out.exists()


def test_warm_start_refuses_a_damaged_training_state(tmp_path, default_file):
    """The `.train.safetensors` beside an exported model (discriminator and heads) is checked too."""
    from iecast.training.losses import LossWeights
    from iecast.models import MultiScaleDiscriminator, VGGEncoder
    from iecast.training.checkpoints import training_state_path, warm_start
    from iecast.training.model import IEContraASTModel

    tensors, meta = default_file
    model_path = write(tmp_path / "model.safetensors", tensors, meta)
    disc = MultiScaleDiscriminator()
    state = {f"discriminator.{k}": v.clone() for k, v in disc.state_dict().items()}
    state[next(iter(state))].view(-1)[0] = float("nan")
    extra = write(training_state_path(model_path), state, {"format": "iecast-train-state"})
    model = IEContraASTModel(VGGEncoder("vgg16"), "sanet", LossWeights())
    with pytest.raises(IecastError) as err:
        warm_start(model, disc, str(model_path), meta["encoder"])
    assert str(extra) in str(err.value) and "\n" not in str(err.value)
    extra.write_bytes(b"truncated")
    with pytest.raises(IecastError, match="not a readable training state"):
        warm_start(model, disc, str(model_path), meta["encoder"])
