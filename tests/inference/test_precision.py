"""Precision and device choice: `auto` follows the hardware, and the bf16 path stays close to fp32.

These run on every machine: `IECAST_NATIVE_BF16` stands in for the CPU detection, and forced
bf16 works (slowly) without native support, so the inputs are small.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from iecast import IecastError, Stylizer
from iecast.hardware import NATIVE_BF16_ENV, native_bf16, resolve_device
from iecast.images import load_image, pil_to_tensor
from iecast.inference.stylizer import resolve_precision

BF16_PSNR_DB = 35.0  # measured 44.5 dB at 96x128 on the default model; bf16 keeps 8 mantissa bits


def test_auto_precision_follows_the_detection(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setenv(NATIVE_BF16_ENV, "1")
    assert native_bf16(cpu) and resolve_precision("auto", cpu) == torch.bfloat16
    monkeypatch.setenv(NATIVE_BF16_ENV, "0")
    assert not native_bf16(cpu) and resolve_precision("auto", cpu) == torch.float32
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        assert resolve_precision(name, cpu) == dtype  # explicit choices ignore the hardware
    with pytest.raises(IecastError, match="unknown precision 'int8'"):
        resolve_precision("int8", cpu)


def test_device_auto_and_missing_devices():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        expected = "mps"
    assert resolve_device("auto").type == expected and resolve_device(None).type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(IecastError, match="no CUDA GPU"):
            resolve_device("cuda:1")
    with pytest.raises(IecastError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")


def _samples(size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    from iecast.assets import __path__ as assets_path

    folder = f"{assets_path[0]}/samples"
    content = pil_to_tensor(load_image(f"{folder}/classic_cars.jpg"))
    style = pil_to_tensor(load_image(f"{folder}/starry_night.jpg"))
    resize = lambda x, hw: F.interpolate(x, size=hw, mode="bilinear", antialias=True, align_corners=False)  # noqa: E731
    return resize(content, size), resize(style, (64, 64))


def test_bf16_is_close_to_fp32_on_the_default_model(monkeypatch):
    """The bf16 path (what `auto` runs on AMX CPUs) against fp32 on a real model and real images."""
    content, style = _samples((48, 64))
    reference = Stylizer.from_pretrained("default", device="cpu", precision="fp32").stylize(content, style, style_size=None)
    monkeypatch.setenv(NATIVE_BF16_ENV, "1")
    auto = Stylizer.from_pretrained("default", device="cpu")
    assert auto.compute_precision == "bf16" and auto.dtype == torch.bfloat16
    out = auto.stylize(content, style, style_size=None)
    assert out.dtype == torch.float32 and out.shape == reference.shape
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    mse = float(((out - reference) ** 2).mean())
    assert mse > 0  # it really ran in another precision
    assert 10 * math.log10(1.0 / mse) >= BF16_PSNR_DB


def test_reduced_precision_weights_are_cast_once(monkeypatch):
    """bf16: the weights calls run with are a bf16 copy made at construction (no weight is cast
    per call); `network` stays fp32, so exports and metrics see the full weights."""
    content, style = _samples((32, 48))
    stylizer = Stylizer.from_pretrained("default", device="cpu", precision="bf16")
    assert {p.dtype for p in stylizer.compute_network.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in stylizer.network.parameters()} == {torch.float32}
    weight_shapes = {tuple(p.shape) for p in stylizer.compute_network.parameters() if p.dim() == 4}
    with torch.profiler.profile(record_shapes=True) as prof:
        stylizer.stylize(content, style, style_size=None)
    weight_casts = [e for e in prof.events() if e.name == "aten::_to_copy" and e.input_shapes
                    and tuple(e.input_shapes[0]) in weight_shapes]
    assert weight_casts == []
    fp32 = Stylizer.from_pretrained("default", device="cpu", precision="fp32")
    assert all(p.dtype == torch.float32 for p in fp32.compute_network.parameters()) and fp32.compute_network is fp32.network


def test_bf16_layers_do_not_round_trip_through_fp32():
    """A bf16 call casts fewer tensors than it runs convolutions: activations stay bf16 between
    layers (autocast used to run each reflection pad in fp32, two casts per convolution)."""
    content, style = _samples((32, 48))
    stylizer = Stylizer.from_pretrained("default", device="cpu", precision="bf16")
    with torch.profiler.profile() as prof:
        stylizer.stylize(content, style, style_size=None)
    names = [e.name for e in prof.events()]
    convolutions, casts = names.count("aten::convolution"), names.count("aten::_to_copy")  # any backend's kernel
    assert convolutions > 20 and casts < convolutions, (casts, convolutions)


def test_fp32_does_not_depend_on_the_detection(monkeypatch):
    content, style = _samples((32, 48))
    monkeypatch.setenv(NATIVE_BF16_ENV, "1")
    pinned = Stylizer.from_pretrained("default", device="cpu", precision="fp32").stylize(content, style, style_size=None)
    monkeypatch.setenv(NATIVE_BF16_ENV, "0")
    auto = Stylizer.from_pretrained("default", device="cpu").stylize(content, style, style_size=None)
    assert torch.equal(pinned, auto)


def test_cli_notes_reduced_precision_after_success(tmp_path, monkeypatch, capsys, weights_file):
    """`auto` on a bf16 machine says so after the run; fp32 runs print nothing extra."""
    from PIL import Image

    from iecast.cli import main

    Image.new("RGB", (40, 32), (200, 40, 10)).save(tmp_path / "c.png")
    Image.new("RGB", (32, 32), (10, 40, 200)).save(tmp_path / "s.png")
    args = ["stylize", "-c", str(tmp_path / "c.png"), "-s", str(tmp_path / "s.png"), "--weights", str(weights_file),
            "--device", "cpu", "--quiet"]
    monkeypatch.setenv(NATIVE_BF16_ENV, "1")
    assert main([*args, "-o", str(tmp_path / "auto.png")]) == 0
    err = capsys.readouterr().err
    assert "note: computed in bf16 on cpu (precision auto" in err and "--precision fp32" in err
    assert main([*args, "-o", str(tmp_path / "fp32.png"), "--precision", "fp32"]) == 0
    assert "note:" not in capsys.readouterr().err
    assert Image.open(tmp_path / "auto.png").size == Image.open(tmp_path / "fp32.png").size == (40, 32)


def test_compile_matches_eager_and_leaves_the_network_plain(monkeypatch):
    """`compile=True` wraps the encoder and decoder of a separate network object: the output
    equals eager up to float rounding, and `network` (what exports read) keeps plain modules."""
    content, style = _samples((32, 48))
    eager = Stylizer.from_pretrained("default", device="cpu", precision="fp32")
    compiled = Stylizer.from_pretrained("default", device="cpu", precision="fp32", compile=True)
    assert type(compiled.network.encoder) is type(eager.network.encoder)
    assert compiled.compute_network is not compiled.network
    assert isinstance(compiled.compute_network.encoder, torch._dynamo.eval_frame.OptimizedModule)
    reference = eager.stylize(content, style, style_size=None)
    out = compiled.stylize(content, style, style_size=None)
    assert out.shape == reference.shape and torch.isfinite(out).all()
    assert float((out - reference).abs().max()) < 1e-3
