"""Helpers of the training tests: the demo preset at narrow widths on tiny batches, train.py driven in-process
(click) or as a child process, and its one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from sagan.config import load_config
from sagan.commands.train import main as train_cli

REPO = Path(__file__).resolve().parent.parent
TINY = ["model.g_ch=16", "model.d_ch=16", "data.demo_size=64", "train.batch_size=8", "train.log_every=5",
        "train.num_workers=0"]
TINY_CLI = [a for o in TINY for a in ("--set", o)]


def tiny(*overrides: str):
    return load_config("demo", overrides=TINY + list(overrides))


def cli(*args: str):
    """Run the click command in-process; returns click's Result (exit_code, stdout, stderr)."""
    return CliRunner().invoke(train_cli, list(args), catch_exceptions=False)


def one_line_error(result) -> str:
    err = result.stderr.strip()
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def spawn_cli(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), "--no-progress", *TINY_CLI, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    t0 = time.time()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"training exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError("timed out waiting for the training subprocess")
        time.sleep(0.1)
