#!/usr/bin/env python
"""Seconds per demo training step on a loaded machine: torch's default thread count vs the count that
``sagan.threads`` chooses (``--threads 0``, the automatic default), side by side in one run.

A busy background process (``--busy`` of them, each a pure-Python spin loop bounded by ``--limit`` seconds and
killed at the end) stands for the "other job" of a laptop or a shared box. After the 1-minute load average has
risen (``--settle`` seconds at most), the automatic choice is read, then the two thread counts take turns,
``--rounds`` times ``--steps`` real demo steps each (``sagan.training.step.GANStep``, batch 32, in-memory
images), so that both see the same load. Prints the median seconds per step of each and their ratio.

    python benchmarks/threads.py                 # one busy process, 3 rounds of 3 steps
    python benchmarks/threads.py --busy 0        # an idle machine: the choice is torch's default, ratio ~1
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import click
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPIN = "import time\nend = time.time() + {limit}\nwhile time.time() < end:\n    pass\n"


def torch_default_threads() -> int:
    """What torch picks in a fresh process without OMP_NUM_THREADS (this one may have been started with it)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=env,
                         capture_output=True, text=True, check=True, timeout=120)
    return int(out.stdout.strip())


def preset_step(preset: str = "demo", batch_size: int | None = None):
    """A function running one real training step of ``preset`` (D updates, the G update, EMA) on random images
    held in memory, at the preset's batch unless ``batch_size`` is given."""
    from sagan.config import load_config
    from sagan.models import Discriminator, Generator
    from sagan.training.loop import make_accelerator
    from sagan.training.step import GANStep

    batch = {"train.batch_size": batch_size} if batch_size else {}
    cfg = load_config(preset, overrides={"train.grad_accum": 1, **batch})
    torch.manual_seed(0)
    step = GANStep(cfg, Generator.from_config(cfg), Discriminator.from_config(cfg), make_accelerator("no")).prepare()
    r, n = cfg.model.resolution, cfg.train.batch_size
    x, y = torch.rand(n, 3, r, r) * 2 - 1, torch.arange(n) % max(cfg.model.num_classes, 1)
    count = iter(range(1, 10**9))
    return lambda: step(next(count), lambda: [(x, y)])


def wait_for_load(rise: float, settle: float) -> float:
    """Wait until the 1-minute load average rose by ``rise`` (or ``settle`` seconds passed); the load then."""
    start, t0 = os.getloadavg()[0], time.time()
    while time.time() - t0 < settle and os.getloadavg()[0] < start + rise:
        time.sleep(2)
    return os.getloadavg()[0]


def seconds_per_step(step, threads: int, steps: int) -> list[float]:
    torch.set_num_threads(threads)
    out = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        out.append(time.perf_counter() - t0)
    return out


@click.command()
@click.option("--busy", type=click.IntRange(min=0), default=1, show_default=True, help="Busy background processes.")
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timed steps per arm and round.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--settle", type=click.FloatRange(min=0), default=75, show_default=True,
              help="Seconds at most to wait for the load average to show the busy processes.")
@click.option("--limit", type=click.IntRange(min=10), default=1800, show_default=True,
              help="Seconds after which a busy process ends by itself (it is killed at the end anyway).")
def main(busy, rounds, steps, batch_size, settle, limit):
    from sagan.threads import choose_threads, usable_cores

    default = torch_default_threads()
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN.format(limit=limit)]) for _ in range(busy)]
    try:
        load = wait_for_load(0.7 * busy, settle) if busy else os.getloadavg()[0]
        chosen = choose_threads(0, default=default, env={})  # the automatic choice, as train.py makes it now
        click.echo(f"{usable_cores()} core(s), {busy} busy process(es), 1-minute load average {load:.2f}; "
                   f"torch's default {default} thread(s); sagan chooses {chosen.note()}")
        step = preset_step("demo", batch_size)
        seconds_per_step(step, default, 1)  # warm-up: first-call allocations, oneDNN primitive caches
        times = {default: [], chosen.threads: []}
        for _ in range(rounds):
            for n in times:
                times[n] += seconds_per_step(step, n, steps)
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    med = {n: statistics.median(t) for n, t in times.items()}
    click.echo(f"demo step (batch {batch_size}), median of {rounds * steps}: torch's default {default} thread(s) "
               f"{med[default]:.3f} s, chosen {chosen.threads} thread(s) {med[chosen.threads]:.3f} s; "
               f"ratio default / chosen {med[default] / med[chosen.threads]:.2f}x; "
               f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
