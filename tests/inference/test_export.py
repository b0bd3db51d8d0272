"""ONNX and TorchScript export: parity with PyTorch at two sizes, runs without iecast, CLI."""
from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from deploy_helpers import random_network, save_random_stylizer
from iecast import IecastError
from iecast.cli import main as cli_main
from iecast.inference.export import export_metadata, export_onnx, export_torchscript, run_exported
from iecast.inference.stylizer import Stylizer
from iecast.weights import DEFAULT_ENCODER

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

# (content H, W), (style H, W), alpha: one square, one non-square with non-multiple-of-16 sides
CASES = [((64, 64), (64, 64), 1.0), ((80, 48), (56, 72), 0.6)]
TOLERANCE = 1e-4
pytestmark = pytest.mark.filterwarnings("ignore:.torch.jit.load. is deprecated:DeprecationWarning")

# Runs in a fresh interpreter where importing iecast is blocked: only numpy, onnxruntime, torch.
RUNNER = r"""
import json, sys
class BlockIecast:
    def find_spec(self, name, path=None, target=None):
        if name == "iecast" or name.startswith("iecast."):
            raise ImportError("iecast must not be needed to run an exported model")
sys.meta_path.insert(0, BlockIecast())
import numpy as np
import onnxruntime
import torch
folder = sys.argv[1]
cases = json.loads(open(f"{folder}/cases.json").read())
session = onnxruntime.InferenceSession(f"{folder}/model.onnx", providers=["CPUExecutionProvider"])
scripted = torch.jit.load(f"{folder}/model.pt")
for i, _ in enumerate(cases):
    feeds = {k: np.load(f"{folder}/{i}_{k}.npy") for k in ("content", "style", "alpha")}
    np.save(f"{folder}/{i}_onnx.npy", session.run(["output"], feeds)[0])
    with torch.no_grad():
        out = scripted(*(torch.from_numpy(feeds[k]) for k in ("content", "style", "alpha")))
    np.save(f"{folder}/{i}_torchscript.npy", out.numpy())
print("iecast imported:", any(m == "iecast" or m.startswith("iecast.") for m in sys.modules))
"""


@pytest.fixture(scope="module")
def network():
    return random_network(seed=1)


@pytest.fixture(scope="module")
def exported(network, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("exported")
    export_onnx(network, folder / "model.onnx")
    export_torchscript(network, folder / "model.pt")
    return folder


@pytest.fixture(scope="module")
def cases_and_references(network, exported):
    """Random inputs per case and the reference: `Stylizer.stylize` on the same tensors."""
    generator = torch.Generator().manual_seed(7)
    stylizer = Stylizer(network, precision="fp32")
    references = []
    for i, ((h, w), (hs, ws), alpha) in enumerate(CASES):
        content = torch.rand(1, 3, h, w, generator=generator)
        style = torch.rand(1, 3, hs, ws, generator=generator)
        np.save(exported / f"{i}_content.npy", content.numpy())
        np.save(exported / f"{i}_style.npy", style.numpy())
        np.save(exported / f"{i}_alpha.npy", np.array([alpha], dtype=np.float32))
        references.append(stylizer.stylize(content, style, alpha=alpha))
    (exported / "cases.json").write_text(json.dumps(CASES))
    return references


@pytest.fixture(scope="module")
def standalone_outputs(exported, cases_and_references):
    result = subprocess.run([sys.executable, "-c", RUNNER, str(exported)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "iecast imported: False" in result.stdout
    return exported


def test_reference_output_is_order_one(cases_and_references):
    """Guard the tolerance: the reference must span [0, 1], not sit near a constant."""
    for reference in cases_and_references:
        assert reference.std() > 0.1
        assert ((reference > 0.01) & (reference < 0.99)).float().mean() > 0.5


@pytest.mark.parametrize("runtime", ["onnx", "torchscript"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_parity_without_iecast(standalone_outputs, cases_and_references, runtime, case):
    """onnxruntime / TorchScript (run with iecast blocked) equal PyTorch within 1e-4, output size = input size."""
    out = torch.from_numpy(np.load(standalone_outputs / f"{case}_{runtime}.npy"))
    reference = cases_and_references[case]
    assert out.shape == reference.shape == (1, 3, *CASES[case][0])
    diff = float((out - reference).abs().max())
    print(f"{runtime} {CASES[case][0]} max |diff| = {diff:.3g}")
    assert diff <= TOLERANCE


def test_alpha_is_a_live_input(exported, network):
    """Alpha changes the ONNX output as it changes PyTorch's (not baked in at trace time)."""
    content, style = torch.rand(1, 3, 48, 48), torch.rand(1, 3, 48, 48)
    stylizer = Stylizer(network, precision="fp32")
    low, high = run_exported(exported / "model.onnx", content, style, 0.0), run_exported(exported / "model.onnx", content, style, 1.0)
    assert float((low - high).abs().max()) > 0.05
    assert float((low - stylizer.stylize(content, style, alpha=0.0)).abs().max()) <= TOLERANCE


def test_onnx_graph_declares_dynamic_sizes_and_metadata(exported):
    model = onnx.load(str(exported / "model.onnx"), load_external_data=False)
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert dims == {"content": [1, 3, "height", "width"], "style": [1, 3, "style_height", "style_width"], "alpha": [1]}
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["encoder"] == DEFAULT_ENCODER and meta["precision"] == "float32"
    assert meta["style_size"] == "512"  # a network without a recorded training scale: the release's
    ops = {node.op_type for node in model.graph.node}
    assert {"Conv", "Softmax", "MaxPool", "Pad"} <= ops


def test_metadata_records_the_training_style_scale(network):
    """The trainer's `resize` from the stylizer file's header becomes the export's `style_size`."""
    trained = copy.copy(network)
    trained.metadata = {"config": json.dumps({"resize": 256, "crop": 128})}
    assert export_metadata(trained, fp16=True)["style_size"] == "256"
    assert export_metadata(network, fp16=False)["style_size"] == "512"


def test_fp16_onnx(network, tmp_path):
    """fp16 halves the file, keeps float32 I/O, and stays close to the float32 model."""
    path = export_onnx(network, tmp_path / "half.onnx", fp16=True)
    model = onnx.load(str(path))
    weight_types = {init.data_type for init in model.graph.initializer if len(init.dims) == 4}
    assert weight_types == {onnx.TensorProto.FLOAT16}
    content, style = torch.rand(1, 3, 48, 40), torch.rand(1, 3, 40, 48)
    reference = Stylizer(network, precision="fp32").stylize(content, style, alpha=0.8)
    out = run_exported(path, content, style, 0.8)
    assert out.dtype == torch.float32 and out.shape == reference.shape
    assert float((out - reference).abs().max()) < 2e-2


def test_cli_export_torchscript_and_check(tmp_path, capsys):
    """The CLI path (ONNX goes through the same `export_model`; TorchScript is the quicker one)."""
    weights = save_random_stylizer(tmp_path / "model.safetensors", seed=2)
    out = tmp_path / "out" / "model.pt"
    assert cli_main(["export", str(weights), "-o", str(out), "--check"]) == 0
    printed = capsys.readouterr().out
    assert out.is_file() and str(out) in printed
    extra = {"iecast.json": ""}
    torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["iecast.json"])["precision"] == "float32"
    verdict = re.search(r"check (\w+): .* fp32 .*: (\S+) \(tolerance (\S+)\)", printed)
    assert verdict and verdict[1] == "passed" and float(verdict[3]) == 1e-3
    assert float(verdict[2]) <= TOLERANCE
    assert not [p for p in out.parent.iterdir() if p.name != "model.pt"]  # no temp files left


def test_cli_export_check_fails_past_tolerance(tmp_path, capsys, monkeypatch):
    """--check compares with PyTorch in fp32 even where `auto` means bf16, and exits 1 past its tolerance."""
    import iecast.inference.export as export_module

    monkeypatch.setenv("IECAST_NATIVE_BF16", "1")  # `auto` would be bf16 here; the check must not use it
    weights = save_random_stylizer(tmp_path / "model.safetensors", seed=3)
    assert cli_main(["export", str(weights), "-o", str(tmp_path / "ok.pt"), "--check"]) == 0
    assert "check passed" in capsys.readouterr().out
    run_exported = export_module.run_exported
    monkeypatch.setattr(export_module, "run_exported", lambda *a, **k: run_exported(*a, **k) + 0.01)
    assert cli_main(["export", str(weights), "-o", str(tmp_path / "bad.pt"), "--check"]) == 1
    captured = capsys.readouterr()
    assert "check FAILED" in captured.out and "over the tolerance 0.001" in captured.err


def test_cli_errors_are_one_line(tmp_path, capsys):
    not_weights = tmp_path / "notes.txt"
    not_weights.write_text("hello")
    assert cli_main(["export", str(not_weights), "-o", str(tmp_path / "m.onnx")]) == 1
    assert cli_main(["export", str(not_weights), "-o", str(tmp_path / "m.bin")]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("iecast: error: ") for line in errors)
    assert "--format" in errors[1]
    assert not (tmp_path / "m.onnx").exists()


def test_unknown_format_is_an_error(network, tmp_path):
    from iecast.inference.export import export_model

    with pytest.raises(IecastError, match="unknown export format"):
        export_model(network, tmp_path / "m.x", "tflite")


def test_cli_training_checkpoint_goes_through_the_training_hook(tmp_path, monkeypatch):
    """A file that is not an iecast stylizer is handed to iecast.training.checkpoints.export_checkpoint;
    for onnx/torchscript its converted weights are then exported."""
    from iecast.inference import export as export_api
    from iecast.training import checkpoints

    calls = []

    def fake_export_checkpoint(checkpoint, out, fp16, **options):
        calls.append((checkpoint, Path(out).suffix, fp16, options))
        return save_random_stylizer(Path(out), seed=4)

    exported = []
    monkeypatch.setattr(checkpoints, "export_checkpoint", fake_export_checkpoint)
    monkeypatch.setattr(export_api, "export_model", lambda model, path, fmt, fp16=False: exported.append((model, fmt, fp16)) or Path(path))
    checkpoint = tmp_path / "ckpt_00001000.pt"
    torch.save({"iteration": 1000}, checkpoint)

    assert cli_main(["export", str(checkpoint), "-o", str(tmp_path / "w.safetensors"), "--fp16", "--with-training-state"]) == 0
    assert calls == [(str(checkpoint), ".safetensors", True, {"with_training_state": True})]
    assert (tmp_path / "w.safetensors").is_file()

    assert cli_main(["export", str(checkpoint), "-o", str(tmp_path / "m.onnx"), "--fp16"]) == 0
    assert calls[1][2] is False and exported[0][0].__class__.__name__ == "Stylizer" and exported[0][1:] == ("onnx", True)
