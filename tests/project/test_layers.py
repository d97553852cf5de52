"""The package's layers, declared in ``.importlinter`` and checked here: one dependency direction (errors /
io / registries -> config -> checkpoint and run-folder formats -> models -> data / augment / sampling /
metrics -> training -> export / convert / experiments / serve -> commands), leaves that stay leaves,
click only in sagan.commands; and no import of a sagan module hidden inside a function (an upward import,
lazy or not, fails here)."""

from __future__ import annotations

import ast
import configparser
import contextlib
import io
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "sagan"


def test_lint_imports_keeps_every_contract(monkeypatch):
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    types = {config[s]["type"] for s in config.sections() if s.startswith("importlinter:contract:")}
    assert {"layers", "forbidden"} <= types
    monkeypatch.chdir(ROOT)
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        code = lint_imports(config_filename=str(ROOT / ".importlinter"), no_cache=True, no_logo=True)
    assert code == 0, report.getvalue()[-4000:]


def function_local_sagan_imports(root: Path) -> list[str]:
    """``path:line`` of every ``import`` of a sagan module inside a function (relative or absolute); imports
    of optional third-party packages inside functions are fine."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        nodes = {id(node): node for fn in functions for node in ast.walk(fn)}
        for node in nodes.values():
            if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").split(".")[0] == "sagan"):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno}")
            elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == "sagan" for a in node.names):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return found


def test_no_sagan_module_is_imported_inside_a_function():
    assert function_local_sagan_imports(PACKAGE) == []


def test_the_scan_finds_a_hidden_import(tmp_path):
    pkg = tmp_path / "sagan"
    pkg.mkdir()
    (pkg / "m.py").write_text("import json\n\ndef f():\n    import onnx\n    from .checkpoint import x\n    "
                              "import sagan.models\n    return x\n")
    assert function_local_sagan_imports(pkg) == ["sagan/m.py:5", "sagan/m.py:6"]


def test_every_top_level_module_is_in_a_layer():
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    layered = {name.strip() for line in config["importlinter:contract:layers"]["layers"].split("\n")
               for name in line.split(":") if name.strip()}
    modules = {f"sagan.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    packages = {f"sagan.{p.parent.name}" for p in PACKAGE.glob("*/__init__.py")}
    assert sorted((modules | packages) - layered) == []
