"""The training side of checkpoints: what a training run stores (weights, optimisers, EMA, RNG states,
the augmentation's and regularisers' states) and restores, and the run's checkpoint folder: numbered
``step_NNNNNNN.pt`` files, ``last.pt`` and ``best.pt`` as hard links, pruning. The file format itself
(atomic writes, verified reads, the schema) is :mod:`sagan.checkpoint`.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import BEST, LAST, fallback_hint, load_state, save_checkpoint, step_file_name, step_files
from ..config import Config
from ..errors import CheckpointError, one_line
from ..io import link_atomic


# --------------------------------------------------------------------------------------------------
# RNG states as plain lists: torch.load(weights_only=True) refuses numpy arrays and Python tuples of them


def rng_state() -> dict[str, Any]:
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "python": [version, list(mt), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }


def set_rng_state(state: dict[str, Any], where: str = "checkpoint") -> None:
    try:
        torch.set_rng_state(state["torch"])
        if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        version, mt, gauss = state["python"]
        random.setstate((version, tuple(mt), gauss))
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{where}: the stored RNG states cannot be restored ({one_line(e, 80)}); the file is "
                              "damaged or not written by train.py") from None


# --------------------------------------------------------------------------------------------------
# the training payload and the checkpoint folder


def training_payload(*, step: int, cfg: Config, G, D, ema, opt_G, opt_D, rng: dict, data: dict,
                     class_names: list[str] | None, meta: dict) -> dict[str, Any]:
    """The checkpoint of a training run (the schema of :mod:`sagan.checkpoint`'s docstring)."""
    return {
        "step": step, "config": cfg.to_dict(),
        "G": G.state_dict(), "D": D.state_dict(), "G_ema": ema.state_dict() if ema is not None else None,
        "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(),
        "rng": rng, "data": data, "class_names": class_names, "meta": meta,
    }


def restore_training_state(ckpt: dict, gan) -> None:
    """Load a training checkpoint into a :class:`sagan.training.step.GANStep` (weights, EMA, optimiser states);
    ``None`` optimiser states (a converted checkpoint) leave fresh ones, no EMA starts the EMA from G."""
    where = ckpt["path"]
    load_state(gan.G_raw, ckpt["G"], f"G of {where}")
    load_state(gan.D_raw, ckpt["D"], f"D of {where}")
    if gan.ema is not None:
        if ckpt["G_ema"] is not None:
            load_state(gan.ema.ema, ckpt["G_ema"], f"G_ema of {where}")
        else:
            gan.ema.ema.load_state_dict(gan.G_raw.state_dict())
    for opt, key in ((gan.opt_G, "opt_G"), (gan.opt_D, "opt_D")):
        if ckpt[key] is None:
            continue
        try:
            opt.load_state_dict(ckpt[key])
        except (ValueError, KeyError, RuntimeError, TypeError) as e:
            raise CheckpointError(f"{key} of {where} does not fit the networks ({one_line(e, 160)})") from None
    try:
        load_small_data_state(gan, ckpt.get("meta") or {})
    except (ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{where}: the stored augmentation / regulariser state is malformed ({one_line(e, 120)}); "
                              f"{fallback_hint(Path(where))}") from None


def small_data_state(gan) -> dict[str, Any]:
    """What a checkpoint keeps (in ``meta``) of a GAN step's augmentation (ADA's p and signal) and
    regularisers (LeCam's moving averages): ``{"augment": {"name", "state"}, "regularisers": {name: state}}``."""
    return {"augment": {"name": gan.cfg.train.augment, "state": gan.augment.state_dict()},
            "regularisers": {n: r.state_dict() for n, r in gan.regularisers.items()}}


def load_small_data_state(gan, meta: dict) -> None:
    """Restore :func:`small_data_state`; the state of another augmentation, or none at all (an older
    checkpoint, a run that switched the option on), leaves the fresh one."""
    aug = meta.get("augment") or {}
    if aug.get("name") == gan.cfg.train.augment and aug.get("state"):
        gan.augment.load_state_dict(aug["state"])
    stored = meta.get("regularisers") or {}
    for name, reg in gan.regularisers.items():
        if stored.get(name):
            reg.load_state_dict(stored[name])


def restore_rng(ckpt: dict, rank: int = 0) -> None:
    """This process's global RNG states from a checkpoint (nothing when it has none)."""
    if ckpt["rng"] is not None:
        per = ckpt["rng"].get("per_process") or []
        set_rng_state(per[rank] if rank < len(per) else ckpt["rng"], f"checkpoint {ckpt['path']}")


def prune_checkpoints(ckpt_dir: Path, keep: int) -> None:
    """Keep the ``keep`` newest ``step_*.pt`` files (``last.pt`` and ``best.pt`` are never pruned).
    Called only after the new file is complete (accelerate's own ``total_limit`` removes the oldest folder
    before the new one is written, so a crash there leaves one checkpoint fewer)."""
    steps = sorted(step_files(ckpt_dir).items())
    for _, p in steps[: max(0, len(steps) - keep)]:
        p.unlink(missing_ok=True)


def write_training_checkpoint(ckpt_dir: Path, step: int, payload: dict, keep: int) -> Path:
    """``step_NNNNNNN.pt``, then ``last.pt`` as a hard link to it, then pruning."""
    path = save_checkpoint(ckpt_dir / step_file_name(step), payload)
    link_atomic(path, ckpt_dir / LAST)
    prune_checkpoints(ckpt_dir, keep)
    return path


def write_best(ckpt_dir: Path, step: int, payload: dict | None) -> Path:
    """``best.pt``: a link to this step's file when there is one (no second write), else ``payload``."""
    step_path = ckpt_dir / step_file_name(step)
    best = ckpt_dir / BEST
    if step_path.is_file():
        link_atomic(step_path, best)
    else:
        save_checkpoint(best, payload)
    return best
