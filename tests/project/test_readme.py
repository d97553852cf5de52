"""The README's commands work as written: every code block that a fresh demo run can run is run.

A real demo run is trained (a few steps stand in for the 1500 of the quick start), then each shell line
and Python block of the README that uses only that run is executed verbatim, from a folder laid out like
the repository root (the top-level scripts), with nothing but the README's own text as input.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_RUN = "runs/00000-demo"
# lines that install packages or start a server (tensorboard, sagan-serve): what a test cannot do as written
NOT_RUN = ("pip install", "tensorboard ", "sagan-serve ")


def readme_blocks() -> list[tuple[str, str]]:
    """(language, text) of every fenced code block of the README."""
    text = (ROOT / "README.md").read_text()
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(\w*)\n(.*?)```", text, flags=re.S)]


def demo_steps() -> list[tuple[str, str]]:
    """In README order: ("shell", line) for each shell line that uses the demo run and installs nothing,
    ("python", block) for each Python block that uses it."""
    steps = []
    for lang, block in readme_blocks():
        if lang in ("bash", "sh"):
            for line in block.splitlines():
                command = line.split("  #")[0].strip()
                if DEMO_RUN in command and not command.startswith(NOT_RUN):
                    steps.append(("shell", command))
        elif lang == "python" and DEMO_RUN in block:
            steps.append(("python", block))
    return steps


@pytest.fixture(scope="module")
def repo_like_dir(tmp_path_factory):
    """A folder laid out like the repository root, with a fresh demo run in ``runs/00000-demo``."""
    work = tmp_path_factory.mktemp("readme")
    for script in ("train.py", "sample.py", "evaluate.py", "hubconf.py"):
        (work / script).symlink_to(ROOT / script)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    env.pop("SAGAN_PLUGINS", None)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    # the quick start's `python train.py`, shortened: the same command with fewer steps
    run = subprocess.run([sys.executable, "train.py", "--max-steps", "4", "--sample-every", "2"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert (work / DEMO_RUN / "checkpoints" / "last.pt").is_file()
    return work, env


def test_readme_quick_start_trains_the_demo_into_runs_00000_demo():
    setup = [block for lang, block in readme_blocks() if "python train.py" in block and "pip install -e ." in block]
    assert setup and setup[0].strip() == "pip install -e . && python train.py"


def test_readme_code_blocks_on_the_demo_run_work_as_written(repo_like_dir):
    work, env = repo_like_dir
    steps = demo_steps()
    kinds = [kind for kind, _ in steps]
    assert kinds.count("shell") >= 4 and "python" in kinds, steps  # the tour, the export, the Python snippets
    for kind, text in steps:
        argv = [sys.executable, "-c", text] if kind == "python" else shlex.split(text)
        if argv[0] == "python":
            argv[0] = sys.executable
        result = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"README {kind} failed:\n{text}\n{result.stdout[-1500:]}{result.stderr[-1500:]}"
