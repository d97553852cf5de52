"""Drawing images from a generator: latents, labels, truncation, batching, uint8 quantisation.

Shared by ``sample.py``, ``evaluate.py metrics --checkpoint`` and the training loop's sample grids.
Every latent is drawn up front from one seeded CPU generator, so the same seed gives the same
pixels whatever the batch size or device (the generator runs in eval mode, so batch norm uses its
running statistics and each image is independent of its batch).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch

from .errors import UserError


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


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images (B, 3, H, W) -> uint8 (B, H, W, 3), rounded as PNG saving would (x*255 + 0.5, floor)."""
    x = (x.float() + 1) * 127.5
    return x.add_(0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


@torch.inference_mode()
def generate(
    G: torch.nn.Module,
    z: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images, labels)`` batches: images uint8 (B, H, W, 3) on CPU, from G in eval mode."""
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")
    device = torch.device(device) if device is not None else next(G.parameters()).device
    was_training = G.training
    G.eval()
    try:
        for i in range(0, len(z), batch_size):
            zb = z[i : i + batch_size].to(device)
            yb = labels[i : i + batch_size].to(device)
            yield to_uint8(G(zb, yb)).cpu(), labels[i : i + batch_size]
    finally:
        G.train(was_training)
