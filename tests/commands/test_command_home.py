"""Every command line lives in ``sagan/commands/`` and only there: the console scripts resolve to a ``main``
in it, each command module runs as ``python -m sagan.commands.<name>``, and no other module imports click
(library code returns values and raises UserError; the command prints)."""

from __future__ import annotations

import ast
import configparser
import importlib
import subprocess
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "sagan"
COMMANDS = PACKAGE / "commands"
CONSOLE_SCRIPTS = {"sagan-train", "sagan-sample", "sagan-evaluate", "sagan-prepare", "sagan-convert",
                   "sagan-experiments", "sagan-export", "sagan-serve"}


def console_scripts() -> dict[str, str]:
    """{script name: "module:attribute"} of setup.cfg's console scripts."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict((part.strip() for part in line.split("=", 1)) for line in lines)


def click_importers(root: Path) -> list[str]:
    """``path:line`` of every import of click (at module level or inside a function) outside ``commands/``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] == "commands":
            continue
        for node in sorted(ast.walk(ast.parse(path.read_text(), str(path))), key=lambda n: getattr(n, "lineno", 0)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            if any(name.split(".")[0] == "click" for name in names):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return found


def test_every_console_script_is_a_main_in_sagan_commands():
    scripts = console_scripts()
    assert set(scripts) == CONSOLE_SCRIPTS
    for name, target in scripts.items():
        module, attr = target.split(":")
        assert module == f"sagan.commands.{name.removeprefix('sagan-')}" and attr == "main", (name, target)
        assert isinstance(getattr(importlib.import_module(module), attr), click.Command), name


def test_every_command_module_runs_as_python_m():
    modules = sorted(p for p in COMMANDS.glob("*.py") if p.stem not in ("__init__", "options"))
    assert {p.stem for p in modules} >= {name.removeprefix("sagan-") for name in CONSOLE_SCRIPTS} | {"augment"}
    for path in modules:
        command = importlib.import_module(f"sagan.commands.{path.stem}").main
        assert isinstance(command, click.Command), path.name
        assert 'if __name__ == "__main__":\n    main(' in path.read_text(), f"{path.name} has no __main__ guard"


def test_no_module_outside_sagan_commands_imports_click():
    assert click_importers(PACKAGE) == []


def test_the_click_scan_finds_an_import_anywhere(tmp_path):
    pkg = tmp_path / "sagan"
    (pkg / "commands").mkdir(parents=True)
    (pkg / "commands" / "train.py").write_text("import click\n")
    (pkg / "m.py").write_text("import json\n\ndef f():\n    import click.testing\n\nfrom click import echo\n")
    assert click_importers(pkg) == ["sagan/m.py:4", "sagan/m.py:6"]


def test_python_m_sagan_commands_train_help():
    result = subprocess.run([sys.executable, "-m", "sagan.commands.train", "--help"], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("Usage: python -m sagan.commands.train [OPTIONS]") and "--config" in result.stdout
