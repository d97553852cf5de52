"""Networks from a checkpoint file: the generator or the discriminator a ``.pt`` checkpoint (or a run
directory, ``RUN:best``) holds, built from its config, in eval mode. The file format itself is
:mod:`sagan.checkpoint`."""

from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import checkpoint_config, load_checkpoint, load_state
from .networks import Discriminator, Generator

__all__ = ["load_discriminator", "load_generator"]


def load_generator(path: str | Path, ema: bool = True, device: str | torch.device = "cpu"):
    """Build the generator of a checkpoint in eval mode.

    Returns ``(G, cfg, ckpt)``; ``ema=False`` takes the raw generator, ``ema=True`` the EMA one when the
    checkpoint has it (else the raw one, with ``ckpt["used_ema"] = False``).
    """
    ckpt = load_checkpoint(path)
    cfg = checkpoint_config(ckpt)
    G = Generator.from_config(cfg)
    use_ema = ema and ckpt.get("G_ema") is not None
    state = ckpt["G_ema"] if use_ema else ckpt["G"]
    load_state(G, state, f"{'G_ema' if use_ema else 'G'} of {ckpt['path']}")
    ckpt["used_ema"] = use_ema
    return G.to(device).eval(), cfg, ckpt


def load_discriminator(path: str | Path, device: str | torch.device = "cpu"):
    """Build the discriminator of a checkpoint in eval mode; returns ``(D, cfg, ckpt)``."""
    ckpt = load_checkpoint(path)
    cfg = checkpoint_config(ckpt)
    D = Discriminator.from_config(cfg)
    load_state(D, ckpt["D"], f"D of {ckpt['path']}")
    return D.to(device).eval(), cfg, ckpt
