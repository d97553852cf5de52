"""Real multi-process runs for tests and benchmarks: ``accelerate launch`` of train.py on CPU (gloo), and
finding one rank's process to kill."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def two_process_train(run: Path, overrides: list[str]) -> list[str]:
    """``accelerate launch --multi_gpu --num_processes 2 train.py`` on CPU (gloo), as a user runs it."""
    sets = [a for o in overrides for a in ("--set", o)]
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(REPO / "train.py"),
            "--no-progress", *sets, "--outdir", str(run)]


def rank_pid(run: Path, rank: int) -> int | None:
    """The pid of the training process of ``run`` whose torchrun environment says ``RANK=rank``."""
    for proc in Path("/proc").iterdir():
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"train.py" in cmdline and str(run).encode() in cmdline and f"RANK={rank}".encode() in environ:
            return int(proc.name)
    return None
