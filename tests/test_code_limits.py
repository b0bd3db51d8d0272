"""Size limits for the package's source: no function over 60 lines, no module over 400 lines.

A function's length is what ast reports (`end_lineno - lineno + 1`; decorators are not counted);
a nested function counts on its own and as part of its parent. A module's length is its line count.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "iecast"
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400


def sources() -> dict[str, str]:
    """{path relative to src/: text} for every module of the package."""
    return {p.relative_to(PACKAGE.parent).as_posix(): p.read_text() for p in sorted(PACKAGE.rglob("*.py"))}


def function_lengths(text: str) -> list[tuple[str, int]]:
    """(name, lines) for every function and method in the module source `text`."""
    return [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def long_functions(modules: dict[str, str], limit: int = MAX_FUNCTION_LINES) -> list[str]:
    return [f"{where}::{name} ({lines} lines)" for where, text in modules.items()
            for name, lines in function_lengths(text) if lines > limit]


def long_modules(modules: dict[str, str], limit: int = MAX_MODULE_LINES) -> list[str]:
    return [f"{where} ({len(text.splitlines())} lines)" for where, text in modules.items()
            if len(text.splitlines()) > limit]


def test_the_walk_finds_the_package():
    assert {"iecast/training/loop.py", "iecast/serve/app.py", "iecast/inference/stylizer.py"} <= set(sources())


def test_no_function_over_the_limit():
    offenders = long_functions(sources())
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines: " + ", ".join(offenders)


def test_no_module_over_the_limit():
    offenders = long_modules(sources())
    assert not offenders, f"modules over {MAX_MODULE_LINES} lines: " + ", ".join(offenders)


@pytest.mark.parametrize("body_lines, flagged", [(MAX_FUNCTION_LINES - 1, False), (MAX_FUNCTION_LINES, True)])
def test_the_checks_count_as_ast_does(body_lines, flagged):
    # the def line plus `body_lines` lines; the decorator line is not counted
    text = "@decorator\ndef f():\n" + "    x = 1\n" * body_lines
    assert bool(long_functions({"probe.py": text})) == flagged
    lines = body_lines + 2  # a module's count includes the decorator
    assert long_modules({"probe.py": text}, limit=lines) == []
    assert long_modules({"probe.py": text}, limit=lines - 1) == [f"probe.py ({lines} lines)"]
