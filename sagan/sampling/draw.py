"""Drawing images from a generator: latents, labels, truncation, batching, uint8 quantisation.

Shared by ``sample.py`` (which writes the sets with :mod:`sagan.sampling.sets`), ``evaluate.py metrics --checkpoint`` and the training loop's sample grids.
Every latent is drawn up front from one seeded CPU generator, so the same seed gives the same latents
and labels whatever the batch size or device. G runs in eval mode with the batch-norm statistics its
``bn_stats`` mode names (:mod:`sagan.sampling.bn_stats`; running statistics unless set otherwise), so that with
running or standing statistics each image is independent of the others in its batch. Pixels are
bit-identical for the same batch size and device in every mode; across batch sizes, batched conv/GEMM
kernels sum in a shape-dependent order (differences ~1e-7), which moves the rare value that sits on a
rounding boundary by one uint8 level (about 1 in 10^5 values), never more; with per-batch statistics
(``batch``) the images depend on the batch size itself.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch

from .bn_stats import sampling_mode
from ..errors import UserError
from .latents import sample_latents


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
    """Yield ``(images, labels)`` batches: images uint8 (B, H, W, 3) on CPU, from G in eval mode with
    the BN statistics of its mode (``sagan.sampling.bn_stats.prepare_generator``; running statistics if unset).

    ``labels`` are class indices (N,), or soft class weights (N, num_classes) for class interpolation.
    """
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")
    device = torch.device(device) if device is not None else next(G.parameters()).device
    with sampling_mode(G):
        for i in range(0, len(z), batch_size):
            zb = z[i : i + batch_size].to(device)
            yb = labels[i : i + batch_size].to(device)
            yield to_uint8(G(zb, yb)).cpu(), labels[i : i + batch_size]


# --------------------------------------------------------------------------------------------------
# class selection


def parse_classes(spec: str | None, num_classes: int) -> list[int] | None:
    """``"1,7,207"`` or ranges ``"0-9,207"`` -> class indices, checked against ``num_classes``."""
    if spec is None or not spec.strip():
        return None
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                out.extend(range(lo_i, hi_i + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise UserError(f"--classes {spec!r}: cannot read {part!r}; use indices and ranges like 1,7,200-205") from None
    if num_classes == 0:
        raise UserError(f"--classes {spec!r}: this model is unconditional (model.num_classes 0); drop --classes")
    bad = [c for c in out if not 0 <= c < num_classes]
    if bad:
        raise UserError(f"--classes {spec!r}: class {bad[0]} is out of range; this model has classes 0-{num_classes - 1}")
    return out


def spread_classes(num_classes: int, n: int = 10) -> list[int]:
    """Up to ``n`` evenly spaced classes (all of them when there are few); for an unconditional model
    (``num_classes`` 0) ``n`` rows of label 0."""
    if num_classes == 0:
        return [0] * n
    if num_classes <= n:
        return list(range(num_classes))
    if n == 1:  # one class: the first (the spacing below would divide by zero)
        return [0]
    return [round(i * (num_classes - 1) / (n - 1)) for i in range(n)]


# --------------------------------------------------------------------------------------------------
# interpolation


def interpolation_inputs(z_dim: int, num_classes: int, classes: Sequence[int], steps: int, seed: int, truncation: float | None = None):
    """Latents and soft class weights for an interpolation figure, one row per entry of ``classes``:

    - rows ``2i``: z moves linearly between two draws, class ``classes[i]`` fixed;
    - rows ``2i + 1``: z fixed, the class conditioning moves linearly from ``classes[i]`` to the next
      class in the list (G mixes its class embeddings, see ``sagan.models.layers.embed``).

    Returns ``z`` (rows * steps, z_dim), ``y`` (rows * steps, num_classes) and per row the classes
    ``(from, to)`` (equal for the z rows). An unconditional model (``num_classes`` 0) has only the z rows,
    with labels 0.
    """
    t = torch.linspace(0, 1, steps)[:, None]
    ends = sample_latents(2 * len(classes), z_dim, seed, truncation)
    if num_classes == 0:
        zs = [(1 - t) * ends[2 * i] + t * ends[2 * i + 1] for i in range(len(classes))]
        return torch.cat(zs), torch.zeros(len(classes) * steps, dtype=torch.long), [(0, 0)] * len(classes)
    eye = torch.eye(num_classes)
    zs, ys, rows = [], [], []
    for i, c in enumerate(classes):
        za, zb = ends[2 * i], ends[2 * i + 1]
        nxt = classes[(i + 1) % len(classes)]
        zs += [(1 - t) * za + t * zb, za.expand(steps, -1)]
        ys += [eye[c].expand(steps, -1), (1 - t) * eye[c] + t * eye[nxt]]
        rows += [(c, c), (c, nxt)]
    return torch.cat(zs), torch.cat(ys), rows


# --------------------------------------------------------------------------------------------------
