"""Command-line options that several commands share, each defined once with one type, range and default."""

from __future__ import annotations

import click
import torch

from ..errors import UserError, one_line
from ..metrics.weights import WEIGHTS_HELP
from ..sampling.bn_stats import BN_MODES

AUTO = "auto"

set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                          help="A config value, e.g. --set train.lr_d=2e-4 --set model.g_attn=[32,64] (repeatable).")
device_option = click.option("--device", default=AUTO, show_default=True, metavar="DEVICE",
                             help="cpu, cuda, cuda:N, or auto (the GPU when there is one; under `accelerate launch`, "
                                  "each process's own).")
truncation_option = click.option("--truncation", type=click.FloatRange(min=0, min_open=True), default=None,
                                 help="Redraw latent entries with |z| > T (BigGAN's truncation trick, Brock et al. "
                                      "2019 section 3.1).")
threads_option = click.option(
    "--threads", type=click.IntRange(min=0), default=None, metavar="N",
    help="CPU threads of torch's kernels; 0 = automatic: torch's default (one per core), fewer when the load "
         "average says other processes keep cores busy (OMP_NUM_THREADS, when set, wins).  [default: automatic; "
         "train.py: the config's train.threads]")
inception_weights_option = click.option("--inception-weights", default=None, metavar="FILE", help=WEIGHTS_HELP)


def seed_option(help: str, default: int | None = 0):
    """``--seed``: a non-negative integer (``None`` as default: the config's ``train.seed``)."""
    return click.option("--seed", type=click.IntRange(min=0), default=default, show_default=default is not None,
                        help=help)


standing_batches_option = click.option("--standing-batches", type=click.IntRange(min=1), default=16,
                                       show_default=True,
                                       help="Batches of 64 latents that --bn-stats standing accumulates.")


def bn_stats_options(fn):
    """``--bn-stats`` (running unless given) and ``--standing-batches``."""
    fn = standing_batches_option(fn)
    return click.option("--bn-stats", type=click.Choice(BN_MODES), default=None,
                        help="G's batch-norm statistics: the checkpoint's running ones (default), each batch's own, "
                             "or standing ones accumulated over fresh latents (BigGAN).")(fn)


def parse_device(name: str) -> torch.device | None:
    """``--device``: a usable device, or None for ``auto``; a one-line error for a name this machine lacks."""
    if name == AUTO:
        return None
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device; use cpu, cuda, cuda:1 or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s); use cuda:0 or cuda")
    try:
        torch.empty(0, device=dev)
    except (RuntimeError, AssertionError) as e:
        raise UserError(f"--device {name!r} is not usable here ({one_line(e)}); try --device cpu or cuda") from None
    return dev


def use_threads(threads: int | None, say: bool = True) -> None:
    """``--threads`` (None or 0: automatic, :mod:`sagan.threads`): set torch's CPU threads and say the choice in
    one line (on the first process of a launch only, and only when it changes torch's count or was asked for;
    ``say`` False: not here, a training run's start-up notes say it)."""
    import os

    from ..threads import apply_threads

    first = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0) == 0
    apply_threads(threads or 0, say=(lambda line: click.echo(line, err=True)) if first and say else None,
                  always=False)
