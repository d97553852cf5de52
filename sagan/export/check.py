"""The check every export passes before it is written: the exported model's images against the
checkpoint's generator's, on a fixed batch of latents and labels."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import UserError
from ..sampling.latents import class_balanced_labels, sample_latents
from .fold import is_conditional


class ExportMismatchError(UserError):
    """The exported model does not reproduce the checkpoint's generator: nothing is written."""


@dataclass(frozen=True)
class CheckBatch:
    z: torch.Tensor  # (N, z_dim) float32
    y: torch.Tensor | None  # (N,) int64 class-balanced labels, None for an unconditional generator
    images: torch.Tensor  # (N, 3, R, R): the checkpoint's generator in eval mode

    def inputs(self) -> tuple[torch.Tensor, ...]:
        return (self.z,) if self.y is None else (self.z, self.y)


@torch.no_grad()
def check_batch(G: torch.nn.Module, num: int = 8, seed: int = 0) -> CheckBatch:
    """``num`` seeded latents (and labels cycling through the classes) with G's images for them; G must be
    in eval mode with the BN statistics the export bakes in."""
    z = sample_latents(num, G.z_dim, seed)
    y = class_balanced_labels(num, range(G.num_classes)) if is_conditional(G) else None
    return CheckBatch(z, y, G(z, y).float())


def compare(images: torch.Tensor, batch: CheckBatch, tolerance: float, what: str) -> float:
    """The max absolute difference to the checkpoint's images; above ``tolerance`` an error (one line)."""
    images = torch.as_tensor(images, dtype=torch.float32)
    if images.shape != batch.images.shape:
        raise ExportMismatchError(f"{what} gives images of shape {tuple(images.shape)}, the checkpoint's generator "
                                  f"{tuple(batch.images.shape)}; nothing was written (please report this)")
    diff = float((images - batch.images).abs().max())
    if not diff <= tolerance:  # NaN fails too
        raise ExportMismatchError(f"{what} differs from the checkpoint's generator by up to {diff:.3g} on "
                                  f"{len(images)} images (tolerance {tolerance:g}); nothing was written "
                                  "(please report this with the checkpoint's config)")
    return diff
