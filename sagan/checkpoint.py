"""Checkpoint files: one ``.pt`` file per snapshot, written atomically, loadable with ``weights_only=True``.

Layout of a checkpoint (a plain dict, nothing pickled but tensors and builtins):

    format      "sagan-checkpoint"          version   1
    step        int (completed G steps)     config    Config.to_dict()
    G, D        state dicts                 G_ema     state dict or None
    opt_G, opt_D  optimizer state dicts     rng       {"torch": uint8 tensor, "cuda": [...], "python": [...], ...}
    data        {"epoch": int, "position": int, ...}  (where the sampler is)
    class_names list[str] or None           meta      free-form dict of builtins (e.g. images seen, time)

Writes are atomic (:mod:`sagan.io`), so a crash mid-save never leaves a half-written ``last.pt``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch

from .config import Config
from .errors import CheckpointError, ConfigError
from .io import atomic_write

FORMAT = "sagan-checkpoint"
VERSION = 1
REQUIRED_KEYS = ("step", "config", "G", "D", "G_ema", "opt_G", "opt_D", "rng", "data")


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Atomically write ``payload`` (plus format/version tags) to ``path``."""
    with atomic_write(path) as f:
        torch.save({"format": FORMAT, "version": VERSION, **payload}, f)
    return Path(path)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run directory / its ``checkpoints/`` folder (then ``last.pt`` in it)."""
    p = Path(path)
    if p.is_dir():
        for cand in (p / "checkpoints" / "last.pt", p / "last.pt"):
            if cand.is_file():
                return cand
        raise CheckpointError(f"no checkpoint in {p} (looked for checkpoints/last.pt and last.pt); pass a .pt file")
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist; check the path")
    return p


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint; every failure is a one-line :class:`CheckpointError`."""
    p = resolve_checkpoint(path)
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot read checkpoint {p}: corrupt or not a torch file ({first[:160]})") from None
    except Exception as e:  # pickle errors under weights_only have many types
        raise CheckpointError(f"cannot read checkpoint {p}: not a torch checkpoint file ({type(e).__name__}); "
                              f"pass a .pt file written by train.py") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a sagan checkpoint (no '{FORMAT}' tag); pass a file written by train.py")
    if ckpt.get("version", 0) > VERSION:
        raise CheckpointError(f"{p} has checkpoint version {ckpt['version']}, newer than this sagan ({VERSION}); upgrade sagan")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{p} is incomplete: missing {', '.join(missing)}; use another checkpoint")
    ckpt["path"] = str(p)
    return ckpt


def checkpoint_config(ckpt: dict[str, Any]) -> Config:
    try:
        return Config.from_dict(ckpt["config"], where=f"config stored in {ckpt.get('path', 'checkpoint')}")
    except ConfigError as e:
        raise CheckpointError(str(e)) from None


def load_generator(path: str | Path, ema: bool = True, device: str | torch.device = "cpu"):
    """Build the generator of a checkpoint in eval mode.

    Returns ``(G, cfg, ckpt)``; ``ema=False`` takes the raw generator, ``ema=True`` the EMA one when the
    checkpoint has it (else the raw one, with ``ckpt["used_ema"] = False``).
    """
    from .models import Generator

    ckpt = load_checkpoint(path)
    cfg = checkpoint_config(ckpt)
    G = Generator.from_config(cfg)
    use_ema = ema and ckpt.get("G_ema") is not None
    state = ckpt["G_ema"] if use_ema else ckpt["G"]
    load_state(G, state, f"{'G_ema' if use_ema else 'G'} of {ckpt['path']}")
    ckpt["used_ema"] = use_ema
    return G.to(device).eval(), cfg, ckpt


def load_state(module: torch.nn.Module, state: dict[str, Any], what: str) -> None:
    """``load_state_dict`` with a one-line error when the architecture does not match."""
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:200]
        raise CheckpointError(f"{what} does not fit the network built from its config ({detail})") from None
