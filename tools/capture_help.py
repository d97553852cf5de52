#!/usr/bin/env python
"""Capture every command's ``--help`` into ``docs/cli/*.txt`` (``python tools/capture_help.py``).

The commands are setup.cfg's console scripts plus the ``python -m`` commands that have none; a click group
gets one file for itself and one per sub-command (``sagan-evaluate-metrics.txt``). Texts are rendered at a
fixed width with click's test runner, so they do not depend on the terminal. ``--check`` compares instead
of writing and lists the files that differ (``tests/project/test_docs.py`` runs it).
"""

from __future__ import annotations

import argparse
import configparser
import importlib
import os
import sys
from pathlib import Path

import click
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "cli"
WIDTH = 100
MODULE_COMMANDS = {"python -m sagan.commands.augment": "sagan.commands.augment:main"}


def commands() -> dict[str, str]:
    """{program name: "module:attribute"} of every command line."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    scripts = {}
    for line in cfg["options.entry_points"]["console_scripts"].strip().splitlines():
        name, target = (part.strip() for part in line.split("=", 1))
        scripts[name] = target
    return {**scripts, **MODULE_COMMANDS}


def help_stem(prog: str) -> str:
    """The file stem of a command's help: ``sagan-train``; ``python -m sagan.commands.augment`` -> ``sagan-augment``."""
    return prog.replace("python -m ", "").replace("sagan.commands.", "sagan-").replace(".", "-")


def _load(target: str) -> click.Command:
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def _help(command: click.Command, prog: str, args: list[str]) -> str:
    result = CliRunner().invoke(command, [*args, "--help"], prog_name=prog, terminal_width=WIDTH, color=False)
    if result.exit_code != 0:
        raise SystemExit(f"{prog} {' '.join(args)} --help failed: {result.output or result.exception}")
    return result.output


def captured() -> dict[str, str]:
    """{file name: help text} for every command and sub-command."""
    os.environ.pop("SAGAN_PLUGINS", None)  # the documented help is that of sagan alone
    texts = {}
    for prog, target in commands().items():
        command = _load(target)
        stem = help_stem(prog)
        texts[f"{stem}.txt"] = _help(command, prog, [])
        if isinstance(command, click.Group):
            for sub in sorted(command.commands):
                texts[f"{stem}-{sub}.txt"] = _help(command, prog, [sub])
    return texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with docs/cli/ instead of writing")
    args = parser.parse_args(argv)
    texts = captured()
    if args.check:
        stale = sorted(n for n, t in texts.items() if not (OUT / n).is_file() or (OUT / n).read_text() != t)
        extra = sorted(p.name for p in OUT.glob("*.txt") if p.name not in texts)
        for name in stale:
            print(f"stale: docs/cli/{name}")
        for name in extra:
            print(f"no such command any more: docs/cli/{name}")
        if stale or extra:
            print("run `python tools/capture_help.py` to capture the current help texts")
        return 1 if stale or extra else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name in (p.name for p in OUT.glob("*.txt") if p.name not in texts):
        (OUT / name).unlink()
    for name, text in texts.items():
        (OUT / name).write_text(text)
    print(f"wrote {len(texts)} help texts to docs/cli/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
