#!/usr/bin/env python
"""Seconds per training step of the CPU presets side by side in one run: ``cpu64`` (your own images at 64px)
against ``demo`` (32px, whose step RESULTS.md times on a quiet machine), each at its own batch, taking turns so
that both see the same load; prints the median of each and the ratio. ``uncond64`` can join with ``--presets``.

    python benchmarks/cpu_presets.py                       # cpu64 vs demo, 3 rounds
    python benchmarks/cpu_presets.py --presets cpu64,demo,uncond64 --rounds 1
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import click
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from threads import preset_step  # noqa: E402  (benchmarks/threads.py)


@click.command()
@click.option("--presets", default="cpu64,demo", show_default=True, help="Comma list; ratios are to the last one.")
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True, help="Timed steps per preset.")
def main(presets, rounds):
    names = [n.strip() for n in presets.split(",") if n.strip()]
    steps = {n: preset_step(n) for n in names}
    for run in steps.values():
        run()  # warm-up
    times = {n: [] for n in names}
    for _ in range(rounds):
        for n, run in steps.items():
            t0 = time.perf_counter()
            run()
            times[n].append(time.perf_counter() - t0)
    base = statistics.median(times[names[-1]])
    click.echo(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), median of {rounds} step(s):")
    for n in names:
        med = statistics.median(times[n])
        click.echo(f"  {n:<10} {med:.3f} s/step  ({med / base:.2f}x {names[-1]})")


if __name__ == "__main__":
    main()
