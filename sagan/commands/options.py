"""Command-line options that several commands share, each defined once with one type, range and default."""

from __future__ import annotations

import os
import sys

import click
import torch

from ..errors import UserError, one_line
from ..plugins import ENTRY_POINT_GROUP, ENV_VAR, PLUGIN_OPTION, load_plugins, plugin_arguments
from ..metrics.weights import WEIGHTS_HELP
from ..registry import AUGMENTS, DATASET_FORMATS, LOSSES, METRICS, RESIZERS
from ..sampling.bn_stats import BN_MODES
from ..threads import apply_threads

AUTO = "auto"
REGISTRY_KEYS = (("train.loss", LOSSES), ("train.augment", AUGMENTS), ("train.eval_metrics", METRICS),
                 ("train.fid_resize", RESIZERS))

# --------------------------------------------------------------------------------------------------
# names asked of the registries when they are needed (a plugin's names are in the choices and --help)


class RegistryChoice(click.Choice):
    """A choice among the live names of a registry (:mod:`sagan.registry`), read at parse and help time."""

    def __init__(self, names, case_sensitive: bool = True):
        self._names = names  # a registry or its live ``names`` view
        super().__init__((), case_sensitive)

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self._names)

    @choices.setter
    def choices(self, value) -> None:  # click.Choice.__init__ assigns the (empty) tuple given above
        pass


class LiveHelpOption(click.Option):
    """An option whose help text is written when ``--help`` asks (``live_help``: a function -> str), so the
    names it lists are the registered ones, a plugin's included."""

    def __init__(self, *args, live_help, **kwargs):
        self.live_help = live_help
        super().__init__(*args, **kwargs)

    def get_help_record(self, ctx):
        self.help = self.live_help()
        return super().get_help_record(ctx)


def live_help_option(*param_decls, live_help, **kwargs):
    """``click.option`` with a help text computed at ``--help`` time (:class:`LiveHelpOption`)."""
    return click.option(*param_decls, cls=LiveHelpOption, live_help=live_help, **kwargs)


def set_help() -> str:
    """``--set``: an example, and the registered names of the keys that name a registry entry (live)."""
    named = "; ".join(f"{key}: {', '.join(registry)}" for key, registry in REGISTRY_KEYS)
    return (f"A config value, e.g. --set train.lr_d=2e-4 --set model.g_attn=[32,64] (repeatable). Registered "
            f"names: {named}.")


set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", cls=LiveHelpOption,
                          live_help=set_help)
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
    first = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0) == 0
    apply_threads(threads or 0, say=(lambda line: click.echo(line, err=True)) if first and say else None,
                  always=False)
def read_formats() -> str:
    """The registered dataset formats a ``--data`` folder may be in (the demo has no folder)."""
    return ", ".join(name for name in DATASET_FORMATS if name != "demo")


# --------------------------------------------------------------------------------------------------
# plugins (sagan.plugins): loaded before any option is parsed, so --help and the choices list their names


def plugin_option() -> click.Option:
    return click.Option([PLUGIN_OPTION], multiple=True, expose_value=False, metavar="MODULE",
                        help=f"Import MODULE first (MODULE:FUNCTION: call it): a plugin that registers losses, "
                             f"metrics, augmentations, regularisers, resize protocols, dataset or export formats "
                             f"(repeatable; also {ENV_VAR}=mod1,mod2 and the {ENTRY_POINT_GROUP} entry points of "
                             f"installed packages).")


class _LoadsPlugins:
    """A click command or group that loads the plugins (entry points, ``SAGAN_PLUGINS``, ``--plugin``) before
    it parses its command line, and accepts ``--plugin`` itself."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.params.append(plugin_option())

    def main(self, args=None, prog_name=None, **extra):
        argv = sys.argv[1:] if args is None else list(args)
        try:
            load_plugins(plugin_arguments(argv))
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        return super().main(args=argv, prog_name=prog_name, **extra)


class Command(_LoadsPlugins, click.Command):
    """Every sagan command (``@click.command(cls=Command)``)."""


class Group(_LoadsPlugins, click.Group):
    """Every sagan command group; its subcommands are :class:`Command` s."""

    command_class = Command
