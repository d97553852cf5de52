"""The documentation is part of the product: the captured ``--help`` texts are the live ones, the docs site
builds with no broken link or anchor, and the README stays a front page."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _capture_module():
    spec = importlib.util.spec_from_file_location("capture_help", ROOT / "tools" / "capture_help.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_captured_help_texts_are_the_live_ones():
    texts = _capture_module().captured()
    on_disk = {p.name: p.read_text() for p in (ROOT / "docs" / "cli").glob("*.txt")}
    assert sorted(on_disk) == sorted(texts), "run `python tools/capture_help.py`"
    stale = [name for name, text in texts.items() if on_disk[name] != text]
    assert not stale, f"stale help texts {stale}: run `python tools/capture_help.py`"


def test_every_console_script_has_its_help_captured():
    module = _capture_module()
    names = {p.stem for p in (ROOT / "docs" / "cli").glob("*.txt")}
    for prog in module.commands():
        assert module.help_stem(prog) in names


def test_docs_site_builds_strictly(tmp_path):
    pytest.importorskip("material", reason="the docs extra: pip install -e '.[docs]'")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "extending" / "index.html").is_file()


def test_a_broken_docs_link_fails_the_strict_build(tmp_path):
    """The strict build is a real check: a page linking to a missing page or anchor fails it."""
    pytest.importorskip("material", reason="the docs extra: pip install -e '.[docs]'")
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    page = copy / "docs" / "index.md"
    page.write_text(page.read_text() + "\nSee [nowhere](training.md#no-such-anchor).\n")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=copy, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "no-such-anchor" in result.stdout + result.stderr


def test_readme_is_a_front_page_of_at_most_200_lines():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move detail into docs/"

