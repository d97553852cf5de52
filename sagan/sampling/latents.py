"""Latents and labels: what G is fed, drawn from one seeded CPU generator so that the same seed gives the
same inputs whatever the batch size or device."""

from __future__ import annotations

from typing import Sequence

import torch

from ..errors import UserError


def model_classes(num_classes: int) -> list[int]:
    """The labels a model samples from: its classes, or ``[0]`` for an unconditional model
    (``model.num_classes`` 0), whose networks ignore the label."""
    return list(range(num_classes)) or [0]


def class_balanced_labels(num_samples: int, classes: Sequence[int]) -> torch.Tensor:
    """``num_samples`` labels cycling through ``classes`` (50 per class for 50k samples of 1000 classes)."""
    if len(classes) == 0:
        raise UserError("no classes to sample from; pass at least one class index")
    idx = torch.arange(num_samples) % len(classes)
    return torch.as_tensor(list(classes), dtype=torch.long)[idx]


def sample_latents(num: int, z_dim: int, seed: int, truncation: float | None = None) -> torch.Tensor:
    """Standard-normal latents (num, z_dim) on CPU; with ``truncation`` T, entries with |z| > T are redrawn
    until all lie in [-T, T] (the truncation trick as BigGAN defines it)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(num, z_dim, generator=g)
    if truncation is not None:
        if truncation <= 0:
            raise UserError(f"truncation must be > 0, got {truncation}")
        out = z.abs() > truncation
        while out.any():
            z[out] = torch.randn(int(out.sum()), generator=g)
            out = z.abs() > truncation
    return z
