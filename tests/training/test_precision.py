"""Mixed precision and torch.compile in the real training step: under bf16 autocast spectral norm's power
iteration and the attention softmax stay fp32 while the convolutions run in bf16; bf16 training of the
demo stays finite and close to fp32; compiled steps equal eager ones."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from sagan.config import load_config
from sagan.models import Discriminator, Generator
from sagan.training import train

REPO = Path(__file__).resolve().parents[2]
TINY = ["model.g_ch=16", "model.d_ch=16", "data.demo_size=64", "train.batch_size=8", "train.log_every=1",
        "train.num_workers=0", "train.sample_every=1000", "train.checkpoint_every=1000"]


def tiny(*overrides: str):
    return load_config("demo", overrides=TINY + list(overrides))


class OpDtypes(TorchDispatchMode):
    """Records every aten op that runs (after autocast has cast its inputs) with its tensor inputs' dtypes."""

    def __init__(self):
        super().__init__()
        self.ops: list[tuple[str, set]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        dtypes = {a.dtype for a in tree_leaves((args, kwargs or {})) if isinstance(a, torch.Tensor)}
        self.ops.append((func.overloadpacket.__name__, dtypes))
        return func(*args, **(kwargs or {}))

    def dtypes(self, *names: str) -> set:
        return set().union(*[d for op, d in self.ops if any(n in op for n in names)])


def test_power_iteration_and_attention_softmax_stay_fp32_under_bf16_autocast():
    cfg = tiny()
    G, D = Generator.from_config(cfg).train(), Discriminator.from_config(cfg).train()
    z, y = torch.randn(4, cfg.model.z_dim), torch.arange(4)
    with torch.autocast("cpu", dtype=torch.bfloat16), OpDtypes() as rec:
        D(G(z, y), y).sum().backward()
    assert torch.bfloat16 in rec.dtypes("convolution")  # autocast is on: the convolutions run in bf16
    assert rec.dtypes("mv") == {torch.float32}  # the power iteration (u = W v, v = W^T u)
    softmax = rec.dtypes("scaled_dot_product")  # the fused softmax attention of G's and D's 16px blocks
    assert softmax == {torch.float32}, softmax


def curve(run, tag: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run))
    ea.Reload()
    return {e.step: e.value for e in ea.Scalars(tag)}


def window_means(c: dict[int, float], width: int) -> list[float]:
    steps = sorted(c)
    return [sum(c[s] for s in steps[i:i + width]) / width for i in range(0, len(steps) - width + 1, width)]


@pytest.mark.slow
def test_bf16_autocast_trains_the_demo_without_nan_close_to_fp32(tmp_path):
    """The demo preset (narrow) for 200 steps in fp32 and under bf16 autocast: every logged loss finite, and
    the two loss curves (means over 50 steps) close. GAN training is chaotic, so "close" is measured against
    the control of another seed: bf16 must differ from fp32 by less than half of what seed 1 differs from
    seed 0 in fp32 (measured on 2 cores: bf16 0.16 in G's loss, another seed 0.3 to 1.1), or by < 0.15."""
    runs = {}
    for name, mp, seed in (("fp32", "no", 0), ("bf16", "bf16", 0), ("fp32_seed1", "no", 1)):
        # one process each: accelerate fixes the precision once per process
        sets = [a for o in TINY + ["train.max_steps=200", "data.demo_size=256", f"train.seed={seed}"]
                for a in ("--set", o)]
        runs[name] = tmp_path / name
        cmd = [sys.executable, str(REPO / "train.py"), "--no-progress", *sets, "--mixed-precision", mp,
               "--outdir", str(runs[name])]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=1800)
        assert proc.returncode == 0, proc.stderr[-3000:]
    for tag in ("loss/d_loss", "loss/g_loss"):
        a, b, c = (curve(runs[n], tag) for n in ("fp32", "bf16", "fp32_seed1"))
        assert len(a) == len(b) == len(c) == 200
        assert all(math.isfinite(v) for v in (*a.values(), *b.values()))
        wa, wb, wc = window_means(a, 50), window_means(b, 50), window_means(c, 50)
        bf16_gap = max(abs(x - y) for x, y in zip(wa, wb))
        seed_gap = max(abs(x - y) for x, y in zip(wa, wc))
        assert bf16_gap < max(0.15, 0.5 * seed_gap), (tag, wa, wb, wc)
    log = (runs["bf16"] / "log.txt").read_text()
    assert "mixed precision bf16" in log
    from sagan.training.startup_notes import cpu_bf16_supported

    assert ("no bf16 units" in log) == (cpu_bf16_supported() is False)  # the start-up note, where it applies


def checkpoint_weights(run) -> torch.Tensor:
    from sagan.checkpoint import load_checkpoint

    ckpt = load_checkpoint(run)
    return torch.cat([v.double().flatten() for key in ("G", "D", "G_ema") for v in ckpt[key].values()
                      if v.is_floating_point()])


@pytest.mark.slow
def test_compiled_steps_with_spectral_norm_and_ema_equal_eager_on_cpu(tmp_path):
    """train.compile (inductor on CPU) of G and D with spectral norm's parametrizations and the EMA:
    3 training steps equal eager ones within 1e-3 (relative L2), and the compile time is said once."""
    cfg = tiny("train.ema_start=1", "train.max_steps=3", "train.checkpoint_every=3")
    eager = checkpoint_weights(train(cfg, outdir=tmp_path / "eager", progress=False))
    run = train(cfg.replace(train={"compile": True}), outdir=tmp_path / "compiled", progress=False)
    compiled = checkpoint_weights(run)
    assert float(torch.linalg.vector_norm(compiled - eager) / torch.linalg.vector_norm(eager)) < 1e-3
    log = (run / "log.txt").read_text()
    assert log.count("torch.compile: the first step took") == 1


def test_bf16_on_a_cpu_without_bf16_units_is_said_at_start_up():
    """The note follows what oneDNN reports for this CPU; fp32, and bf16 on a GPU, say nothing."""
    from sagan.training.startup_notes import cpu_bf16_supported, device_notes

    bf16 = tiny("train.mixed_precision=bf16")
    notes = device_notes(bf16, torch.device("cpu"))
    if cpu_bf16_supported() is False:
        assert len(notes) == 1 and "no bf16 units" in notes[0] and "--mixed-precision no" in notes[0]
    else:
        assert notes == []
    assert device_notes(tiny(), torch.device("cpu")) == [] and device_notes(bf16, torch.device("cuda")) == []
