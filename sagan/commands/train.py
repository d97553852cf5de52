"""``train.py`` / ``sagan-train``: train or resume a SAGAN (the loop lives in :mod:`sagan.training`)."""

from __future__ import annotations

import click

import sys
from pathlib import Path

from ..checkpoint import checkpoint_config, load_checkpoint
from ..config import DATA_DERIVED, apply_overrides, load_config, preset_names
from ..checkpoint import CHECKPOINT_DIR, step_files
from ..config_effects import check_user_keys, user_set_keys
from ..errors import UserError, one_line, report_user_errors
from ..rundir import CONFIG_FILE, has_checkpoint, is_unstarted_run
from ..threads import chosen_note
from ..training.dist import lost_peer
from ..training.fit import auto_grad_accum, dry_run, parse_memory
from ..training.loop import Trainer, make_accelerator, open_run_data
from .options import (Command, inception_weights_option, live_help_option, read_formats, seed_option, set_option,
                      threads_option, use_threads)


def top_level_presets() -> list[str]:
    """The presets train.py takes by name, read from the package's configs folder (not the experiments')."""
    return [n for n in preset_names() if "/" not in n]


def pinned_model_keys(config: str, overrides: tuple[str, ...]) -> set[str]:
    """Which of ``DATA_DERIVED`` the user fixed: set with ``--set model.KEY=...`` or written in their own YAML
    or a ``base:`` of it that is not a built-in preset (the presets' values are defaults that a dataset
    may replace)."""
    user = user_set_keys(config, overrides)
    return {k for k in DATA_DERIVED if f"model.{k}" in user}


class GradAccum(click.ParamType):
    name = "N|auto"

    def convert(self, value, param, ctx):
        if str(value).strip().lower() == "auto":
            return "auto"
        try:
            n = int(value)
        except (TypeError, ValueError):
            n = 0
        if n < 1:
            self.fail(f"{value!r} is neither an integer >= 1 nor auto", param, ctx)
        return n


def fit_device(cfg, pinned, auto: bool, memory: int | None, resuming: bool = False):
    """``--grad-accum auto`` (the config with the split that fits) and ``--dry-run`` (``memory`` given); returns
    the config and the dataset opened for it (None for the demo), which the trainer then trains on."""
    acc = make_accelerator(cfg.train.mixed_precision)
    dataset = None
    if cfg.data.path is not None:  # resolution and classes from the data, as the trainer takes them
        dataset, cfg = open_run_data(cfg, pinned, resuming)
    say = (lambda line: click.echo(line, err=True)) if acc.is_main_process else (lambda line: None)
    if auto:
        cfg = auto_grad_accum(cfg, acc, say)
    if memory is not None:
        if chosen_note():  # main() chose the thread count before
            say(chosen_note())
        dry_run(cfg, acc, memory, say)
    return cfg, dataset


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@live_help_option("--config", default=None, metavar="PRESET|YAML",
                  live_help=lambda: f"Preset ({', '.join(top_level_presets())}) or YAML "
                                    "file (experiments/<experiment>/<variant> for the experiments' variants).  "
                                    "[default: demo; with --resume the checkpoint's]")
@live_help_option("--data", "data_path", default=None, metavar="PATH",
                  live_help=lambda: f"A dataset folder in any format sagan reads ({read_formats()}; data.split / "
                                    "data.labels choose within).  [default: the built-in demo dataset]")
@click.option("--outdir", default=None, metavar="DIR", help="Run directory.  [default: runs/NNNNN-<config name>; with --resume the checkpoint's run]")
@click.option("--resume", default=None, metavar="DIR|FILE", help="Continue a run: its directory (checkpoints/last.pt) or a .pt file.")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Total G steps (train.max_steps).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Global batch over all processes and accumulation steps.")
@click.option("--grad-accum", type=GradAccum(), default=None, metavar="N|auto",
              help="Gradient accumulation steps per update; auto: the largest micro-batch that fits the GPU (the "
                   "same global batch; on CPU the config's value).")
@click.option("--mixed-precision", type=click.Choice(["no", "bf16", "fp16"]), default=None,
              help="Autocast dtype (bf16 is safe; fp16 tends to collapse).")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=None, help="Steps between checkpoints.")
@click.option("--sample-every", type=click.IntRange(min=1), default=None, help="Steps between sample grids.")
@seed_option("Seed of weights, data order and latents.  [default: the config's train.seed]", default=None)
@set_option
@inception_weights_option
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show the progress bar.")
@click.option("--dry-run", is_flag=True, help="Build the networks, run one step at two micro-batch sizes, print parameters, "
              "FLOPs per image, peak memory and what fits --memory; write nothing.")
@click.option("--memory", default="24GiB", show_default=True, metavar="SIZE", help="Memory budget of --dry-run.")
@threads_option
@report_user_errors
def main(config, data_path, outdir, resume, max_steps, batch_size, grad_accum, mixed_precision, checkpoint_every,
         sample_every, seed, overrides, inception_weights, progress, dry_run, memory, threads):
    """Train a SAGAN (Zhang et al. 2019): class-conditional on labelled data, unconditional on a folder of
    unlabelled images (model.num_classes 0).

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
      # your own unlabelled images (a flat folder), 64px, sized for a CPU
      python train.py --config cpu64 --data ~/faces
      # any config value
      python train.py --set train.lr_d=2e-4 --set model.g_ch=16 --outdir runs/narrow
      # two CPU processes (gloo) on a machine without GPUs (accelerate's --cpu launcher starts only one)
      accelerate launch --multi_gpu --num_processes 2 train.py --max-steps 50
      # W&B (offline) and MLflow (a SQLite store in the run folder) beside TensorBoard; [none]: no tracker
      WANDB_MODE=offline python train.py --set 'train.log_with=[tensorboard,wandb,mlflow]'

    Writes OUTDIR/config.yaml, log.txt, TensorBoard events (tensorboard --logdir runs),
    samples/step_NNNNNNN.png (EMA generator, one class per row), checkpoints/{last,step_NNNNNNN}.pt and,
    with evaluations (train.fid_every), metrics.jsonl and checkpoints/best.pt.
    Ctrl-C or SIGTERM saves a checkpoint and exits with 128 + the signal number (130, 143); --resume
    continues bit-exactly, applying any changed optimiser settings (--set train.lr_d=...).
    """
    auto = grad_accum == "auto"
    explicit = {
        "data.path": data_path, "train.max_steps": max_steps, "train.batch_size": batch_size,
        "train.grad_accum": None if auto else grad_accum, "train.mixed_precision": mixed_precision,
        "train.checkpoint_every": checkpoint_every, "train.sample_every": sample_every, "train.seed": seed,
        "train.threads": threads,
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
        pinned = set(DATA_DERIVED)
    else:
        config = config or "demo"
        cfg = apply_overrides(load_config(config, overrides=list(overrides)), explicit)
        pinned = pinned_model_keys(config, overrides)
    for note in check_user_keys(cfg, user_set_keys(config, (*overrides, *explicit)), config):
        click.echo(note, err=True)
    if ckpt is not None and ckpt["step"] >= cfg.train.max_steps:
        click.echo(f"{ckpt['path']} already reached train.max_steps={cfg.train.max_steps} (step {ckpt['step']}); "
                   f"to train longer, resume with --max-steps N (N > {ckpt['step']})", err=True)
        return
    use_threads(cfg.train.threads, say=False)  # the run's start-up notes say it, after any refusal
    dataset = None  # opened once: by fit_device, else by the trainer
    if dry_run or auto:
        cfg, dataset = fit_device(cfg, pinned, auto, parse_memory(memory) if dry_run else None, ckpt is not None)
        if dry_run:
            return
    trainer = None
    try:
        trainer = Trainer(cfg=cfg, outdir=outdir, resume=ckpt, pinned=pinned, inception_weights=inception_weights,
                          progress=progress, restart=restart, dataset=dataset)
        trainer.run()
    except KeyboardInterrupt:  # a second Ctrl-C while the first one's checkpoint was pending
        where = trainer.outdir if trainer is not None else None
        has = where is not None and has_checkpoint(where)
        tail = (f"the previous checkpoint is intact (writes are atomic): continue with --resume {where}" if has
                else "no checkpoint was written yet" + (f"; start again with --resume {where}" if where else ""))
        raise UserError(f"interrupted before a checkpoint could be saved; {tail}") from None
    except RuntimeError as e:  # torch raises this from its SIGCHLD handler, deep inside a step
        lost = lost_peer(e)
        if lost is not None:
            raise UserError(peer_lost_message(lost, trainer, outdir)) from None
        if "DataLoader worker" not in str(e):
            raise
        where = trainer.outdir if trainer is not None else "the run directory"
        raise UserError(f"a data loading worker died ({one_line(e)}; out of memory?); lower "
                        f"train.num_workers or free memory, then continue with --resume {where}") from None
    if trainer.stopped_by is not None:
        sys.exit(128 + trainer.stopped_by)  # the convention for "ended by signal N": preemption is not completion


def peer_lost_message(lost: str, trainer, outdir) -> str:
    """One line for a run whose other process died: who, where it stopped, and the resume command."""
    where = trainer.outdir if trainer is not None and hasattr(trainer, "outdir") else outdir
    at = f" at step {trainer.step}" if trainer is not None and hasattr(trainer, "step") else ""
    steps = step_files(Path(where) / CHECKPOINT_DIR) if where is not None else {}
    kept = (f"the checkpoints are intact (the last at step {max(steps)}): continue with the same launch command and "
            f"--resume {where}" if steps else "no checkpoint was written yet: start again"
            + (f" with --resume {where}" if where is not None else ""))
    return f"{lost}{at}, so this one stopped too; {kept}"


if __name__ == "__main__":
    main()
