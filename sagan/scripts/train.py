"""``train.py`` / ``sagan-train``: train or resume a SAGAN (the loop lives in :mod:`sagan.training`)."""

from __future__ import annotations

import click

import sys
from pathlib import Path

from ..checkpoint import checkpoint_config, load_checkpoint
from ..config import CONFIG_DIR, apply_overrides, config_chain, load_config
from ..errors import UserError, report_user_errors
from ..training.rundir import CONFIG_FILE, has_checkpoint, is_unstarted_run

DATA_KEYS = ("resolution", "num_classes")  # taken from the dataset unless the user pins them


def pinned_model_keys(config: str, overrides: tuple[str, ...]) -> set[str]:
    """Which of ``DATA_KEYS`` the user fixed: set with ``--set model.KEY=...`` or written in their own YAML
    or a ``base:`` of it that is not a built-in preset (the presets' values are defaults that a dataset
    may replace)."""
    pinned = {k for k in DATA_KEYS for o in overrides if o.split("=", 1)[0].strip() == f"model.{k}"}
    presets = CONFIG_DIR.resolve()
    for path, raw in config_chain(config):
        if presets not in path.resolve().parents:
            model = raw.get("model") or {}
            pinned |= {k for k in DATA_KEYS if isinstance(model, dict) and k in model}
    return pinned


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--config", default=None, metavar="PRESET|YAML",
              help="Preset (demo, imagenet128, imagenet128_feat32) or YAML file.  [default: demo; with --resume the checkpoint's]")
@click.option("--data", "data_path", default=None, metavar="PATH",
              help="Packed dataset (sagan-prepare) or class-per-folder image tree.  [default: the built-in demo dataset]")
@click.option("--outdir", default=None, metavar="DIR", help="Run directory.  [default: runs/NNNNN-<config name>; with --resume the checkpoint's run]")
@click.option("--resume", default=None, metavar="DIR|FILE", help="Continue a run: its directory (checkpoints/last.pt) or a .pt file.")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Total G steps (train.max_steps).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Global batch over all processes and accumulation steps.")
@click.option("--grad-accum", type=click.IntRange(min=1), default=None, help="Gradient accumulation steps per update.")
@click.option("--mixed-precision", type=click.Choice(["no", "bf16", "fp16"]), default=None,
              help="Autocast dtype (bf16 is safe; fp16 tends to collapse).")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=None, help="Steps between checkpoints.")
@click.option("--sample-every", type=click.IntRange(min=1), default=None, help="Steps between sample grids.")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed of weights, data order and latents.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Any config value, e.g. --set train.lr_d=2e-4 --set model.g_attn=[32,64] (repeatable).")
@click.option("--inception-weights", default=None, metavar="FILE",
              help="pt_inception-2015-12-05-6726825d.pth for FID during training (train.fid_every + data.ref_stats).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show the progress bar.")
@report_user_errors
def main(config, data_path, outdir, resume, max_steps, batch_size, grad_accum, mixed_precision, checkpoint_every,
         sample_every, seed, overrides, inception_weights, progress):
    """Train a class-conditional SAGAN (Zhang et al. 2019).

    \b
    Examples:
      # the demo: 32px, 10 procedurally generated classes, CPU, a few minutes
      python train.py
      # ImageNet 128x128 as in the paper (packed once with sagan-prepare), 8 GPUs, bf16
      accelerate launch --num_processes 8 train.py --config imagenet128 --data data/imagenet128
      # the same global batch of 256 on one GPU: 4 accumulation steps of 64
      python train.py --config imagenet128 --data data/imagenet128 --grad-accum 4
      # continue a run (after Ctrl-C, a crash or kill -9), optionally for longer
      python train.py --resume runs/00000-imagenet128 --max-steps 1500000
      # any config value
      python train.py --set train.lr_d=2e-4 --set model.g_ch=16 --outdir runs/narrow
      # two CPU processes (gloo) on a machine without GPUs (accelerate's --cpu launcher starts only one)
      accelerate launch --multi_gpu --num_processes 2 train.py --max-steps 50

    Writes OUTDIR/config.yaml, log.txt, TensorBoard events (tensorboard --logdir runs),
    samples/step_NNNNNNN.png (EMA generator, one class per row), checkpoints/{last,step_NNNNNNN}.pt and,
    with evaluations (train.fid_every), metrics.jsonl and checkpoints/best.pt.
    Ctrl-C or SIGTERM saves a checkpoint and exits with 128 + the signal number (130, 143); --resume
    continues bit-exactly, applying any changed optimiser settings (--set train.lr_d=...).
    """
    from ..training.loop import Trainer

    explicit = {
        "data.path": data_path, "train.max_steps": max_steps, "train.batch_size": batch_size,
        "train.grad_accum": grad_accum, "train.mixed_precision": mixed_precision,
        "train.checkpoint_every": checkpoint_every, "train.sample_every": sample_every, "train.seed": seed,
    }
    explicit = {k: v for k, v in explicit.items() if v is not None}
    restart = None
    if resume is not None and is_unstarted_run(Path(resume)):
        # killed before its first checkpoint: nothing to resume, so start that run again from step 0
        restart, ckpt = Path(resume), None
        config = config or str(restart / CONFIG_FILE)
        click.echo(f"note: {restart} has no checkpoint yet (stopped before its first save); starting it again "
                   "from step 0", err=True)
    else:
        ckpt = load_checkpoint(resume) if resume is not None else None
    if ckpt is not None and config is None:
        cfg = apply_overrides(apply_overrides(checkpoint_config(ckpt), list(overrides)), explicit)
        pinned = set(DATA_KEYS)
    else:
        config = config or "demo"
        cfg = apply_overrides(load_config(config, overrides=list(overrides)), explicit)
        pinned = pinned_model_keys(config, overrides)
    if ckpt is not None and ckpt["step"] >= cfg.train.max_steps:
        click.echo(f"{ckpt['path']} already reached train.max_steps={cfg.train.max_steps} (step {ckpt['step']}); "
                   f"to train longer, resume with --max-steps N (N > {ckpt['step']})", err=True)
        return
    trainer = None
    try:
        trainer = Trainer(cfg, outdir, ckpt, pinned, inception_weights, progress, restart=restart)
        trainer.run()
    except KeyboardInterrupt:  # a second Ctrl-C while the first one's checkpoint was pending
        where = trainer.outdir if trainer is not None else None
        has = where is not None and has_checkpoint(where)
        tail = (f"the previous checkpoint is intact (writes are atomic): continue with --resume {where}" if has
                else "no checkpoint was written yet" + (f"; start again with --resume {where}" if where else ""))
        raise UserError(f"interrupted before a checkpoint could be saved; {tail}") from None
    except RuntimeError as e:  # torch raises this from its SIGCHLD handler, deep inside a step
        if "DataLoader worker" not in str(e):
            raise
        where = trainer.outdir if trainer is not None else "the run directory"
        raise UserError(f"a data loading worker died ({' '.join(str(e).split())[:120]}; out of memory?); lower "
                        f"train.num_workers or free memory, then continue with --resume {where}") from None
    if trainer.stopped_by is not None:
        sys.exit(128 + trainer.stopped_by)  # the convention for "ended by signal N": preemption is not completion


if __name__ == "__main__":
    main()
