#!/usr/bin/env python
"""Mode coverage of the GAN objectives on a 2-D toy: a ring of 8 Gaussians, small MLPs, seconds per run.

The objectives of issue 28 run through sagan's own loss and penalty code (``sagan.objectives.losses.get_loss``
and ``sagan.objectives.regularisers.input_gradient_norms``), only the networks and the data are toys:

    hinge        SAGAN's loss, no penalty
    ns_r1        non-saturating loss + R1 (StyleGAN2's objective)
    hinge_r1r2   hinge + R1 + R2
    rpgan_r1r2   relativistic pairing loss + R1 + R2 (R3GAN's objective)
    rpgan_r1     rpgan + R1 only          ns_r1r2   non-saturating + R1 + R2

Data: 8 Gaussians of standard deviation 0.05 on a circle of radius 2 (the ring of Metz et al. 2017, unrolled
GANs, and of VEEGAN / PacGAN's "2D-ring", wider here so that a run of seconds can place samples on the
modes). Networks: G maps 16-d normal noise through 3 linear layers (64 wide, ReLU) to the plane; D maps the
plane through 3 linear layers (64 wide, LeakyReLU 0.2) to one logit, no normalisation. Adam (beta1 0, beta2
0.99), lr 2e-3 for both, batch 128, 1,000 steps of one D update and one G update; gamma 0.1 for R1 and R2
where on. G's step pairs its fakes with the D update's real batch (as sagan's training step does).

Measures, on 2,500 samples of the final G (the protocol of VEEGAN / PacGAN): a sample is *high-quality*
when it lies within 3 standard deviations of its nearest mode; a mode is *kept* when at least 1% of the
samples (25) are high-quality samples of it. Mean ± std over seeds, per objective::

    python benchmarks/toy_modes.py                          # 10 seeds x the 6 objectives
    python benchmarks/toy_modes.py --seeds 3 --steps 1000 --objectives hinge,rpgan_r1r2

R3GAN's Table 1 (StackedMNIST, 1000 modes), for comparison of what the objectives buy: RpGAN + R1 + R2 covers
1000 modes (reverse KL 0.0781), GAN + R1 + R2 693 (KL 0.9270), RpGAN + R1 and GAN + R1 fail to converge.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path

import click
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sagan.objectives.losses import get_loss  # noqa: E402
from sagan.objectives.regularisers import input_gradient_norms  # noqa: E402

OBJECTIVES = {  # name: (train.loss, R1 on, R2 on)
    "hinge": ("hinge", False, False),
    "ns_r1": ("ns", True, False),
    "hinge_r1r2": ("hinge", True, True),
    "rpgan_r1r2": ("rpgan", True, True),
    "rpgan_r1": ("rpgan", True, False),
    "ns_r1r2": ("ns", True, True),
}
MODES, RADIUS, STD = 8, 2.0, 0.05
Z_DIM, WIDTH = 16, 64


def mode_centres() -> torch.Tensor:
    angles = torch.arange(MODES, dtype=torch.float32) * (2 * math.pi / MODES)
    return RADIUS * torch.stack([angles.cos(), angles.sin()], dim=1)


def real_batch(n: int, gen: torch.Generator) -> torch.Tensor:
    which = torch.randint(MODES, (n,), generator=gen)
    return mode_centres()[which] + STD * torch.randn(n, 2, generator=gen)


class ToyG(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(Z_DIM, WIDTH), nn.ReLU(), nn.Linear(WIDTH, WIDTH), nn.ReLU(),
                                 nn.Linear(WIDTH, 2))

    def forward(self, z):
        return self.net(z)


class ToyD(nn.Module):
    """D(x, labels) like sagan's D; the toy is unconditional, the labels are ignored."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, WIDTH), nn.LeakyReLU(0.2), nn.Linear(WIDTH, WIDTH), nn.LeakyReLU(0.2),
                                 nn.Linear(WIDTH, 1))

    def forward(self, x, labels=None):
        return self.net(x).squeeze(1)


def train_toy(objective: str, seed: int, steps: int, batch: int, gamma: float, lr: float) -> nn.Module:
    loss_name, r1, r2 = OBJECTIVES[objective]
    loss = get_loss(loss_name)
    torch.manual_seed(seed)
    G, D = ToyG(), ToyD()
    opt_G = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.0, 0.99))
    opt_D = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.0, 0.99))
    gen = torch.Generator().manual_seed(10_000 + seed)
    labels = torch.zeros(batch, dtype=torch.long)
    for _ in range(steps):
        real = real_batch(batch, gen)
        with torch.no_grad():
            fake = G(torch.randn(batch, Z_DIM, generator=gen))
        d_loss, _ = loss.d_loss(D(real), D(fake))
        if r1:
            d_loss = d_loss + gamma / 2 * input_gradient_norms(D, real, labels).mean()
        if r2:
            d_loss = d_loss + gamma / 2 * input_gradient_norms(D, fake, labels).mean()
        opt_D.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_D.step()

        D.requires_grad_(False)
        fake = G(torch.randn(batch, Z_DIM, generator=gen))
        g_loss = loss.g(D(fake), D(real)) if loss.g_reads_real else loss.g(D(fake))
        opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_G.step()
        D.requires_grad_(True)
    return G


def coverage(G: nn.Module, seed: int, n: int = 2500) -> tuple[int, float]:
    """(modes kept, fraction of high-quality samples) of ``n`` samples of ``G``."""
    with torch.no_grad():
        x = G(torch.randn(n, Z_DIM, generator=torch.Generator().manual_seed(20_000 + seed)))
    dist = torch.cdist(x, mode_centres())
    nearest, which = dist.min(dim=1)
    good = nearest < 3 * STD
    per_mode = torch.bincount(which[good], minlength=MODES)
    return int((per_mode >= 0.01 * n).sum()), float(good.float().mean())


def mean_std(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f}"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--seeds", type=int, default=10, show_default=True)
@click.option("--steps", type=int, default=1000, show_default=True, help="G updates (one D update each).")
@click.option("--batch", type=int, default=128, show_default=True)
@click.option("--gamma", type=float, default=0.1, show_default=True, help="R1 and R2 gamma where on.")
@click.option("--lr", type=float, default=2e-3, show_default=True)
@click.option("--objectives", default=",".join(OBJECTIVES), show_default=True)
def main(seeds, steps, batch, gamma, lr, objectives):
    """Modes kept (of 8) and high-quality samples per objective on the 2-D ring, mean ± std over seeds."""
    torch.set_num_threads(1)
    names = [o.strip() for o in objectives.split(",") if o.strip()]
    unknown = [o for o in names if o not in OBJECTIVES]
    if unknown:
        raise click.BadParameter(f"unknown objective(s) {', '.join(unknown)}; choose from {', '.join(OBJECTIVES)}",
                                 param_hint="--objectives")
    rows = []
    for name in names:
        modes, quality, secs = [], [], []
        for seed in range(seeds):
            t0 = time.process_time()  # CPU seconds: what a run costs whatever else shares the machine
            kept, hq = coverage(train_toy(name, seed, steps, batch, gamma, lr), seed)
            secs.append(time.process_time() - t0)
            modes.append(kept)
            quality.append(hq)
        rows.append((name, modes, quality, statistics.mean(secs)))
        click.echo(f"{name:>11s}: modes {modes}, high-quality {mean_std([100 * q for q in quality])} %, "
                   f"{statistics.mean(secs):.1f} CPU s/run", err=True)
    click.echo(f"\n2-D ring of {MODES} Gaussians (radius {RADIUS:g}, std {STD:g}); {seeds} seeds x {steps} steps, "
               f"batch {batch}, gamma {gamma:g}, lr {lr:g}; torch {torch.__version__}, 1 thread")
    click.echo("| objective | modes kept (of 8) | all 8 kept | high-quality samples | CPU s/run |")
    click.echo("|---|---|---|---|---|")
    for name, modes, quality, sec in rows:
        click.echo(f"| {name} | {mean_std(modes)} | {sum(m == MODES for m in modes)}/{len(modes)} | "
                   f"{mean_std([100 * q for q in quality])} % | {sec:.1f} |")


if __name__ == "__main__":
    main()
