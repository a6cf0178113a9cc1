"""The package's layering: no import cycle, and the torch-free layers import with torch (and, for
runtime/, onnx) made unimportable.

Imports run one way: models/ -> convert -> checkpoint -> pipeline -> commands; graph/ (onnx + numpy),
runtime/ (onnxruntime + numpy) and native/ (numpy) never need torch.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import condense_deploy

PACKAGE = Path(condense_deploy.__file__).resolve().parent


def _module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> modules of the package it imports: module-level and function-level imports, and
    the packages a module's import implies (importing a.b.c runs a/__init__ and a/b/__init__)."""
    files = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}

    def add(source: str, target: str) -> None:
        while target and target not in files:  # a name imported from a module, not a module
            target = target.rpartition(".")[0]
        if target and target != source:
            graph[source].add(target)

    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == root.name:
                        add(name, alias.name)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                if module.split(".")[0] != root.name:
                    continue
                for alias in node.names:  # from pkg import module
                    add(name, f"{module}.{alias.name}" if f"{module}.{alias.name}" in files else module)
        parent = name.rpartition(".")[0]
        if parent:
            add(name, parent)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (a list of modules, first repeated last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_cycle_check_finds_a_cycle(tmp_path: Path) -> None:
    root = tmp_path / "condense_deploy"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "a.py").write_text("from .b import x\n")
    (root / "b.py").write_text("def f():\n    from . import a\n")
    assert find_cycle(import_graph(root)) == ["condense_deploy.a", "condense_deploy.b", "condense_deploy.a"]


def _modules(subpackage: str) -> list[str]:
    package = __import__(f"condense_deploy.{subpackage}", fromlist=["_"])
    prefix = package.__name__ + "."
    return [package.__name__] + [m.name for m in pkgutil.iter_modules(package.__path__, prefix)]


# module -> the third-party packages it must import without
BLOCKED = {
    **{m: ("torch", "torchvision", "onnxsim") for m in _modules("graph")},
    **{m: ("torch", "torchvision", "onnxsim", "onnx") for m in _modules("runtime")},
    **{m: ("torch", "torchvision", "onnxsim", "onnx") for m in _modules("native")},
    **{m: ("torch", "torchvision", "onnxsim", "onnx")
       for m in ("condense_deploy", "condense_deploy.errors", "condense_deploy._fsutil",
                 "condense_deploy.images", "condense_deploy.architectures",
                 "condense_deploy.architectures.registry",
                 "condense_deploy.cli", "condense_deploy.table")},
}


@pytest.mark.parametrize("module", sorted(BLOCKED))
def test_imports_without(module: str) -> None:
    blocked = BLOCKED[module]
    code = ("import sys\n"
            f"for name in {blocked!r}:\n"
            "    sys.modules[name] = None  # any import of it now raises ImportError\n"
            f"import {module}\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, f"{module} needs one of {blocked}:\n{done.stderr[-2000:]}"


def test_no_user_interface_in_the_library() -> None:
    """Only the CLI (cli.py, commands/, the torchrun entry point) imports click; the library reports
    progress through callbacks."""
    cli = {"condense_deploy.cli", "condense_deploy.__main__", "condense_deploy.train.__main__"}
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        if name in cli or name.startswith("condense_deploy.commands"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "click" for n in names):
                offenders.append(name)
    assert offenders == []
