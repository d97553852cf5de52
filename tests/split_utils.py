"""Helpers of the split-invariance tests: a tiny demo run with flips and a checkpoint at step 2, launched as
two real CPU processes, and the weights that must agree between splits."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import torch

from launch_utils import REPO, two_process_train
from sagan.checkpoint import load_checkpoint
from sagan.config import load_config

# flips on (a split-invariant hash of the image index), a few steps, a checkpoint at step 2
TINY = ["model.g_ch=16", "model.d_ch=16", "data.demo_size=64", "data.hflip=true", "train.batch_size=8",
        "train.log_every=1", "train.num_workers=0", "train.sample_every=1000", "train.checkpoint_every=2",
        "train.keep_checkpoints=5", "train.ema_start=2", "train.max_steps=4"]
TOL = 1e-5


def tiny(*overrides: str):
    return load_config("demo", overrides=TINY + list(overrides))


def launch_two_processes(out: Path, *overrides: str) -> Path:
    """``accelerate launch --multi_gpu --num_processes 2 train.py`` on CPU (gloo), as a user runs it."""
    proc = subprocess.run(two_process_train(out, TINY + list(overrides)), capture_output=True, text=True, cwd=REPO,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


# G's biases right before a batch norm, which subtracts them again: their gradient is zero in exact
# arithmetic, so Adam (which divides by the gradient's size) turns float rounding into steps of random sign.
# Each is a direction the network's function does not depend on; every other weight must agree.
CANCELLED_BY_BN = re.compile(r"^(linear|blocks\.\d+\.(conv1|conv2|shortcut))\.bias$")


def weights(path: Path) -> torch.Tensor:
    """G, D and EMA weights of a checkpoint as one vector: parameters and spectral norm's u/v; not BN's
    running statistics (they follow the micro-batches each process sees, see the README), not the biases
    that a batch norm cancels."""
    ckpt = load_checkpoint(path)
    parts = [v.double().flatten() for key in ("G", "D", "G_ema") for k, v in sorted(ckpt[key].items())
             if v.is_floating_point() and "running_" not in k and not (key != "D" and CANCELLED_BY_BN.match(k))]
    return torch.cat(parts)


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))
