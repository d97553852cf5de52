"""Run directories: ``runs/NNNNN-<name>`` (stylegan2-ada's naming) holding config, log, events, samples,
checkpoints and the metric history; which directory a new or resumed run writes to, and start-up
housekeeping (stale temp files of killed writers), and the lock a trainer holds on its run directory."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

import yaml

from .checkpoint import CHECKPOINT_DIR, LAST, step_files
from .errors import UserError
from .io import TEMP_SUFFIX, check_writable, exclusive_lock, sweep_temp_files, write_text_atomic

RUNS_DIR = Path("runs")
CONFIG_FILE, LOG_FILE, METRICS_FILE, SAMPLES_DIR = "config.yaml", "log.txt", "metrics.jsonl", "samples"
LOCK_FILE = ".lock"  # held by the trainer using the run directory (sagan.io.exclusive_lock)


def checkpoint_run_dir(path: str | Path) -> Path:
    """The run directory a checkpoint belongs to (``RUN/checkpoints/x.pt`` -> ``RUN``)."""
    p = Path(path).resolve().parent
    return p.parent if p.name == CHECKPOINT_DIR else p


def run_name(cfg) -> str:
    """A new run's name: the config's, and the data's folder name when it trains on the user's data
    (``demo-digits32``), so that runs on different data do not look alike."""
    if not cfg.data.path:
        return cfg.name
    data = re.sub(r"[^A-Za-z0-9._+-]+", "_", Path(cfg.data.path).name).strip("._")[:48]
    return cfg.name if not data or data == cfg.name else f"{cfg.name}-{data}"


def next_run_dir(root: Path, name: str) -> Path:
    """``root/NNNNN-name`` with the next free number (stylegan2-ada's run naming)."""
    ids = [int(m.group(1)) for p in (root.iterdir() if root.is_dir() else []) if (m := re.match(r"(\d{5})-", p.name))]
    return root / f"{max(ids, default=-1) + 1:05d}-{name}"


def has_checkpoint(run: Path) -> bool:
    ckpts = run / CHECKPOINT_DIR
    return ckpts.is_dir() and (os.path.lexists(ckpts / LAST) or bool(step_files(ckpts)))  # a FIFO: the loader says why


def is_unstarted_run(run: Path) -> bool:
    """A run directory killed before its first checkpoint: it has its config but nothing to resume."""
    return run.is_dir() and (run / CONFIG_FILE).is_file() and not has_checkpoint(run)


def in_run_dir(checkpoint: str | Path) -> bool:
    """Whether a checkpoint file sits in a run's ``checkpoints/`` folder (not a loose converted file)."""
    return Path(checkpoint).resolve().parent.name == CHECKPOINT_DIR


def resolve_outdir(outdir: str | Path | None, name: str, resume_path: str | None, restart: Path | None = None) -> Path:
    """Where the run writes. A resumed run continues in its own directory (``restart``: a run directory
    without checkpoints that starts again from step 0); a loose checkpoint file (e.g. converted from
    released weights) starts a new run directory; any other non-empty directory is refused rather than
    silently mixed with a previous run."""
    if outdir is None:
        if restart is not None:
            return restart
        if resume_path and in_run_dir(resume_path):
            return checkpoint_run_dir(resume_path)
        return next_run_dir(RUNS_DIR, name)
    out = Path(outdir)
    if resume_path and out.resolve() == checkpoint_run_dir(resume_path):
        return out
    if restart is not None and out.resolve() == restart.resolve():
        return out
    if out.exists() and not out.is_dir():
        raise UserError(f"--outdir {out} is a file; pick a directory")
    if out.is_dir() and any(p.name != LOCK_FILE for p in out.iterdir()):
        if is_unstarted_run(out):
            raise UserError(f"--outdir {out} holds a run that stopped before its first checkpoint; start it again "
                            f"with --resume {out}, or pick another --outdir")
        raise UserError(f"--outdir {out} already holds files (a previous run?); continue it with --resume {out}, "
                        f"or pick another --outdir")
    return out


def write_run_config(outdir: Path, cfg) -> None:
    write_text_atomic(outdir / CONFIG_FILE, yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def create_run_dir(outdir: Path, cfg) -> None:
    """A new run directory appears with its ``config.yaml`` in it (made as a temp folder, then renamed), so
    a kill during start-up never leaves a run folder that ``--resume`` cannot start again."""
    if outdir.is_dir():
        return
    check_writable(outdir.parent, "run directory's parent")
    tmp = outdir.with_name(f".{outdir.name}.{os.getpid()}.{os.urandom(4).hex()}{TEMP_SUFFIX}")
    try:
        tmp.mkdir()
        write_run_config(tmp, cfg)
        os.rename(tmp, outdir)
    except OSError:
        if not outdir.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def lock_run_dir(outdir: Path) -> contextlib.ExitStack:
    """The run directory's lock (``RUN/.lock``), held by the trainer until ``.close()`` or until it ends in
    any way; a second trainer on the same directory is refused in one line naming the holder's pid."""
    stack = contextlib.ExitStack()
    stack.enter_context(exclusive_lock(outdir / LOCK_FILE, "run directory"))
    return stack


def prepare_run_dir(outdir: Path, cfg) -> list[Path]:
    """Check that the run directory is writable, give it its config if it has none yet, and remove the temp
    files killed writers left in it (``checkpoints/``, ``samples/``, the run folder itself); returns what
    was removed. Call under the run's lock."""
    check_writable(outdir, "run directory")
    if not (outdir / CONFIG_FILE).is_file():
        write_run_config(outdir, cfg)
    # in the run folder itself only the trainer's own files: sample.py / evaluate.py may be writing there
    removed = sweep_temp_files(outdir, (CONFIG_FILE, METRICS_FILE))
    for folder in (outdir / CHECKPOINT_DIR, outdir / SAMPLES_DIR):
        removed += sweep_temp_files(folder)
    return removed
