"""``sagan-export`` / ``python -m sagan.commands.export``: a checkpoint's generator as ONNX, TorchScript or a
Hugging Face Hub folder."""

from __future__ import annotations

import click

from ..errors import report_user_errors
from ..export.exporter import EXPORT_BN_MODES, export_checkpoint
from ..export.formats import FORMATS
from .options import Command, RegistryChoice, live_help_option, seed_option, standing_batches_option

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


@click.command(cls=Command, context_settings=CONTEXT)
@click.option("--checkpoint", required=True, metavar="RUN[:best]|FILE",
              help="A run directory (its checkpoints/last.pt), RUN:best, or a .pt checkpoint.")
@live_help_option("--format", "fmt", required=True, type=RegistryChoice(FORMATS),
                  live_help=lambda: "; ".join(f"{f.name}: {f.help}" for f in FORMATS.values()) + ".")
@live_help_option("--out", required=True, metavar="PATH",
                  live_help=lambda: "The {} to write.".format(" or ".join(
                      f"{kind} ({', '.join(n for n, f in FORMATS.items() if f.folder == folder)})"
                      for kind, folder in (("file", False), ("folder", True))
                      if any(f.folder == folder for f in FORMATS.values()))))
@click.option("--no-ema", is_flag=True, help="Export the raw generator instead of the EMA one.")
@click.option("--bn-stats", type=click.Choice(EXPORT_BN_MODES), default="running", show_default=True,
              help="Batch-norm statistics baked in: the checkpoint's running ones, or standing ones accumulated over "
                   "fresh latents (BigGAN).")
@standing_batches_option
@seed_option("Seed of the check batch (and of the standing statistics' latents).")
@click.option("--check-images", type=click.IntRange(min=1), default=8, show_default=True,
              help="Images on which the export must reproduce the checkpoint's generator before it is written.")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing --out file that is not an earlier sagan export (never the checkpoint itself).")
@report_user_errors
def main(checkpoint, fmt, out, no_ema, bn_stats, standing_batches, seed, check_images, overwrite):
    """Export a checkpoint's generator (the EMA one unless --no-ema) for use without the training code.

    \b
    Examples:
      sagan-export --checkpoint runs/00000-demo --format onnx --out runs/00000-demo/G.onnx
      sagan-export --checkpoint RUN:best --format torchscript --out G.torchscript.pt
      sagan-export --checkpoint RUN --format hf --out G-hf/ --bn-stats standing
      sagan-export --checkpoint sagan_studiogan.pt --format onnx --out sagan_studiogan.onnx

    Spectral norm is folded into the weights (W / sigma from the stored u, v, as eval mode computes it),
    batch norm runs in eval mode with the chosen statistics and attention as plain matrix products: the
    result has no parametrization and no randomness, and takes any batch size. Every export is checked
    against the checkpoint's generator before it is written; a mismatch is an error and writes nothing.
    An existing --out is replaced only when it is an earlier export (its sagan tag), else with --overwrite;
    never the checkpoint being exported.
    """
    result = export_checkpoint(checkpoint, fmt, out, ema=not no_ema, bn_stats=bn_stats,
                               standing_batches=standing_batches, seed=seed, num_checked=check_images,
                               overwrite=overwrite)
    if not no_ema and not result.used_ema:
        click.echo("note: the checkpoint has no EMA generator; exported the raw one", err=True)
    for note in result.notes:
        click.echo(note, err=True)
    click.echo(result.summary())


if __name__ == "__main__":
    main()
