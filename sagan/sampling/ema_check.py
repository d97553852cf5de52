"""Checks that the EMA generator a grid, sample.py or sagan-export draws from shows what training
produced (issue 26): a note when the average is young (fewer than about 1 / (1 - decay) steps since
``train.ema_start``: it still carries much of the early weights), and when its images differ wildly
from the raw G's on the same latents (BN statistics that do not fit its averaged weights draw
near-white or washed-out tiles; sagan/training/ema.py recomputes them for checkpoints it writes).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..checkpoint import load_state
from ..models import Generator
from .draw import generate
from .latents import sample_latents


def averaging_note(step: int, decay: float, start: int) -> str | None:
    """A note when the EMA at ``step`` has averaged fewer than about 1 / (1 - decay) steps: it still
    mixes in much older weights (decay^n of the weights at ``start`` after n steps), so its images can
    look unlike G's; None otherwise, and before ``start`` (the copy is G then)."""
    averaged = step - start + 1
    horizon = 1.0 / (1.0 - decay) if decay < 1 else float("inf")
    if averaged < 1 or averaged >= horizon:
        return None
    return (f"note: the EMA generator at step {step} has averaged {averaged} steps, fewer than 1/(1 - ema_decay) = "
            f"{horizon:.0f}: it still carries {decay ** averaged:.0%} of the weights of step {start}, so its images "
            "may look unlike G's")


def samples_differ_note(ema_images, raw_images) -> str | None:
    """A note when the EMA and the raw G draw wildly different images from the same latents: mean
    brightness apart by more than a quarter of the [-1, 1] range, or spreads (std) apart by more than 2x,
    the signature of BN statistics that do not fit the averaged weights (near-white or washed-out tiles)."""
    e, r = ema_images.float(), raw_images.float()
    mean_gap = abs(float(e.mean()) - float(r.mean()))
    se, sr = float(e.std()), float(r.std())
    ratio = max(se, sr) / max(min(se, sr), 1e-6)
    if mean_gap <= 0.5 and ratio <= 2.0:
        return None
    return (f"note: the EMA generator's images differ wildly from the raw G's on the same latents (mean "
            f"{float(e.mean()):+.2f} vs {float(r.mean()):+.2f}, std {se:.2f} vs {sr:.2f}); if they look collapsed or "
            "near-white, try --bn-stats standing (statistics for the EMA's own weights) or --no-ema")


NOTE_SAMPLES = 16  # latents on which a checkpoint's EMA and raw generators are compared


@torch.no_grad()
def checkpoint_notes(G: nn.Module, cfg, ckpt: dict, device=None) -> list[str]:
    """Notes for sampling a checkpoint's EMA generator ``G`` (loaded by
    :func:`sagan.checkpoint.load_generator`) with its stored BN statistics: a young average
    (:func:`averaging_note`), and EMA images that differ wildly from the raw G's on the same latents
    (:func:`samples_differ_note`; checkpoints written before the EMA's statistics were recomputed for its
    weights can draw near-white tiles). Nothing for the raw generator."""
    if not ckpt.get("used_ema") or ckpt.get("G") is None:
        return []
    hint = "; compare with --no-ema, and --bn-stats standing (BN statistics for the EMA's own weights)"
    t = cfg.train
    notes = [n + hint for n in [averaging_note(ckpt["step"], t.ema_decay, t.ema_start)] if n is not None]
    raw = Generator.from_config(cfg)
    load_state(raw, ckpt["G"], f"G of {ckpt['path']}")
    raw = raw.to(device if device is not None else next(G.parameters()).device).eval()
    z = sample_latents(NOTE_SAMPLES, G.z_dim, seed=0)
    y = torch.arange(NOTE_SAMPLES) % max(G.num_classes, 1)
    ema_images, raw_images = (torch.cat([b for b, _ in generate(g, z, y)]).float() / 127.5 - 1 for g in (G, raw))
    differ = samples_differ_note(ema_images, raw_images)
    return notes + ([differ] if differ is not None else [])
