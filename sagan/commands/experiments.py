"""``python -m sagan.commands.experiments`` / ``sagan-experiments``: run and report the paper's experiments."""

from __future__ import annotations

import sys

import click

from ..errors import UserError, report_user_errors
from ..experiments.stacked_mnist import NUM_SAMPLES, TRAIN_SIZE, run_stacked_mnist
from ..experiments.definitions import build_variant, experiment_names, variant_names
from ..experiments.report import write_summary
from ..experiments.runner import run_experiment
from .options import Group, inception_weights_option, threads_option, use_threads



@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def main():
    """Rerun the SAGAN paper's experiments: SN/TTUR stability curves, the attention-placement table and
    the Table 2 baselines (SNGAN-projection, AC-GAN); small_data: 100% / 20% / 10% of the data, each
    with and without DiffAugment; objectives: the paper's hinge against StyleGAN2's and R3GAN's objectives
    (FID, KID, precision / recall / density / coverage); stacked_mnist: the same objectives on
    StackedMNIST, scored by the modes they cover out of 1000; biggan_ablation: BigGAN's Table 1 steps from
    SAGAN (FID / KID / PRDC).

    \b
    Examples:
      # minutes on a CPU: the attention table on the built-in demo data (32px)
      sagan-experiments run attention --base demo --steps 300 --eval-every 100 --outdir runs/exp-attention
      sagan-experiments report runs/exp-attention              # summary.md, summary.json, curves.png
      # a subset of variants, reference statistics you already have
      sagan-experiments run attention --variants no_attention,feat16 --ref ref.npz --outdir runs/exp-a
      # days on GPUs: the paper preset on ImageNet (packed with sagan-prepare), 8 GPUs per variant
      accelerate launch --num_processes 8 -m sagan.commands.experiments run stabilisation --base imagenet128 \\
          --data data/imagenet128 --steps 1000000 --eval-every 20000 --num-samples 10000 --outdir runs/exp-stab
      # the DiffAugment paper's CIFAR-10 comparison for SAGAN (cifar10 preset, data packed with sagan-prepare)
      sagan-experiments run small_data --base cifar10 --data data/cifar10 --steps 100000 --eval-every 5000 \\
          --num-samples 10000 --outdir runs/exp-small-data
      # Table 2's comparison on CIFAR-10 (StudioGAN's recipe), three seeds per variant
      sagan-experiments run baselines --base cifar10 --data data/cifar10 --seeds 3 --steps 100000 \\
          --eval-every 5000 --num-samples 10000 --outdir runs/exp-baselines
      # mode coverage: the objectives on StackedMNIST (MNIST's IDX files as torchvision downloads them)
      sagan-experiments run stacked_mnist --data data/mnist --seeds 3 --steps 2000 --outdir runs/exp-stacked
      # the objectives (hinge, StyleGAN2's ns + lazy R1, hinge + R1 + R2, R3GAN's rpgan + R1 + R2) on CIFAR-10
      sagan-experiments run objectives --base cifar10 --data data/cifar10 --seeds 3 --steps 100000 \\
          --eval-every 5000 --num-samples 10000 --outdir runs/exp-objectives
      # BigGAN's Table 1 ablation (SAGAN, + shared embedding, + hierarchical latents, + ortho) on CIFAR-10
      sagan-experiments run biggan_ablation --base cifar10_biggan --data data/cifar10 --seeds 3 --steps 100000 \\
          --eval-every 5000 --num-samples 10000 --outdir runs/exp-biggan
      sagan-experiments list
    """


def _placement(resolutions, block_type: str) -> str:
    """``attention at 32px``, ``residual blocks at 8px`` or ``no attention``."""
    if not resolutions:
        return "no attention"
    where = ", ".join(f"{r}px" for r in resolutions)
    return f"attention at {where}" if block_type == "attention" else f"residual blocks at {where} (no attention)"


def _penalties(train) -> str:
    """`` + R1 0.05 + R2 0.05 (every 16th D step)`` for a config with gradient penalties, else empty."""
    terms = "".join(f" + {name} {gamma:g}" for name, gamma in (("R1", train.r1_gamma), ("R2", train.r2_gamma)) if gamma)
    return terms + (f" (every {train.reg_interval}th D step)" if terms and train.reg_interval > 1 else "")


@main.command("list")
@click.option("--base", default="demo", show_default=True, help="Show placements on this base.")
@report_user_errors
def list_(base):
    """The experiments, their variants and what each variant changes on BASE."""
    for exp in experiment_names():
        click.echo(exp)
        for name in variant_names(exp):
            v = build_variant(exp, name, base, {})
            if v.config is None:
                what = "not available on " + base
            else:
                m, t = v.config.model, v.config.train
                what = (f"G {_placement(m.g_attn, m.g_block_type)}, D {_placement(m.d_attn, m.d_block_type)}, "
                        f"SN in G {m.g_sn}, D head {m.d_cond}, lr G {t.lr_g:g} / D {t.lr_d:g}, data "
                        f"{'all' if v.config.data.subset is None else f'{v.config.data.subset:g}'}, augment {t.augment}, "
                        f"loss {t.loss}{_penalties(t)}")
                if exp == "biggan_ablation":  # BigGAN's options (issue 29)
                    what += (f", shared embedding {m.shared_embedding or m.hierarchical_z}, hierarchical z "
                             f"{m.hierarchical_z}, ortho_reg {t.ortho_reg:g}")
            click.echo(f"  {name:<17} {what}")


@main.command()
@click.argument("experiment", type=click.Choice(experiment_names()))
@click.option("--outdir", required=True, metavar="DIR", help="Experiment directory (one run directory per variant).")
@click.option("--data", default=None, metavar="PATH", help="Packed dataset or class-per-folder tree; stacked_mnist: the folder holding MNIST/raw/ (IDX files).  [default: the base's data]")
@click.option("--base", default="demo", show_default=True, metavar="PRESET|YAML", help="Config the variants are applied on (demo, imagenet128, or a YAML).")
@click.option("--steps", type=click.IntRange(min=1), default=300, show_default=True, help="Training steps per variant.")
@click.option("--eval-every", type=click.IntRange(min=1), default=100, show_default=True, help="Steps between evaluations (and checkpoints).")
@click.option("--num-samples", type=click.IntRange(min=10), default=None, metavar="N",
              help="Generated samples per evaluation (>= 10: the Inception Score's splits); stacked_mnist: per mode "
                   "count.  [default: 1000; stacked_mnist: 26000, PacGAN's protocol]")
@click.option("--variants", default=None, metavar="A,B,...", help="Only these variants.  [default: all]")
@click.option("--ref", default=None, metavar="REF.npz", help="Reference statistics (evaluate.py stats).  [default: computed once from --data]")
@inception_weights_option
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs per variant (train.seed, +1, ...): the report gives best FID as mean ± std.")
@click.option("--resolution", type=click.IntRange(min=8), default=None, metavar="PX",
              help="stacked_mnist: the stacked images' size (MNIST's 28px digits resized).  [default: 32]")
@click.option("--train-size", type=click.IntRange(min=1), default=None, metavar="N",
              help="stacked_mnist: stacked training images.  [default: 128000, PacGAN's]")
@click.option("--classifier-epochs", type=click.IntRange(min=1), default=3, show_default=True,
              help="stacked_mnist: epochs of the digit classifier on MNIST's training images.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@threads_option
@report_user_errors
def run(experiment, outdir, data, base, steps, eval_every, num_samples, variants, ref, inception_weights, seeds,
        resolution, train_size, classifier_epochs, progress, threads):
    """Train and evaluate every variant of EXPERIMENT (stabilisation, attention, baselines, small_data, objectives
    or stacked_mnist), then write the report.

    Same seeds, budget and evaluation cadence for every variant. Re-running the same command skips
    finished runs and resumes an interrupted one exactly; each evaluation prints one line. A single run
    of a GAN is not a result: --seeds 3 or more for a comparison.
    """

    use_threads(threads)
    if experiment == "stacked_mnist":
        if ref or inception_weights:
            raise UserError("stacked_mnist counts modes with its own digit classifier: drop --ref / --inception-weights")
        stopped, main = run_stacked_mnist(outdir, data=data, steps=steps, eval_every=eval_every,
                                          num_samples=num_samples or NUM_SAMPLES, base=base, variants=variants,
                                          seeds=seeds, resolution=resolution or 32, train_size=train_size or TRAIN_SIZE,
                                          classifier_epochs=classifier_epochs, progress=progress)
    else:
        if resolution is not None or train_size is not None:
            raise UserError(f"--resolution / --train-size apply to stacked_mnist; {experiment} takes the resolution "
                            f"from --data (or --base)")
        stopped, main = run_experiment(experiment, outdir, steps=steps, eval_every=eval_every,
                                       num_samples=num_samples or 1000, base=base, data=data, variants=variants,
                                       ref=ref, inception_weights=inception_weights, progress=progress, seeds=seeds)
    if main:  # under accelerate launch, one process writes the report
        paths = write_summary(outdir)
        click.echo("wrote " + ", ".join(str(p) for p in paths.values()), err=True)
    if stopped is not None:
        sys.exit(128 + stopped)


@main.command()
@click.argument("outdir", type=click.Path(file_okay=False))
@report_user_errors
def report(outdir):
    """summary.md, summary.json and curves.png of an experiment directory (from the variants run so far)."""
    paths = write_summary(outdir)
    click.echo(paths["md"].read_text())
    click.echo("wrote " + ", ".join(str(p) for p in paths.values()), err=True)


if __name__ == "__main__":
    main()
