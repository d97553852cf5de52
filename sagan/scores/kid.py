"""Kernel Inception Distance (Binkowski et al. 2018): the unbiased MMD^2 between generated and real
Inception pool features under the cubic polynomial kernel k(x, y) = (x . y / d + 1)^3, averaged over
random subsets.

As torch-fidelity (and stylegan2-ada) compute it: ``subsets`` times, draw ``subset_size`` generated
rows and then ``subset_size`` real rows without replacement from ``np.random.RandomState(2020)``
(torch-fidelity's seed and draw order, so the subsets are the same ones), take

    MMD^2_u = (sum_{i != j} k(x_i, x_j) + sum_{i != j} k(y_i, y_j)) / (m (m - 1)) - 2 sum_{i, j} k(x_i, y_j) / m^2

and report the mean and the population std over the subsets. The subset size is clipped to the smaller
side (stylegan2-ada's ``min(n_real, n_gen, max_subset_size)``); the report notes it.

Precision and speed: each subset costs three m x d x m products (12 GFLOP at m = 1000, d = 2048), in
float64 on the evaluation device. KID is a small difference of large kernel sums, so float32 products,
twice as fast on CPU, move it: torch-fidelity's float32 numpy code differs from the float64 value by
1.3e-5 relative on benchmarks/metrics.py's 10k features.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import UserError
from .stats import RefStats, row_reader

KID_SEED = 2020  # torch-fidelity's rng_seed


def _cubic_kernel_sums(x: torch.Tensor, y: torch.Tensor, dim: int) -> tuple[float, float]:
    """(sum of all entries, sum of the diagonal) of k(x, y) for float64 x, y."""
    k = (x @ y.T).div_(dim).add_(1).pow_(3)
    return float(k.sum()), float(k.diagonal().sum())


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD^2 of two equal-sized feature sets under the cubic kernel (torch-fidelity's ``mmd2``
    with ``mmd_est="unbiased"``)."""
    m, dim = len(x), x.shape[1]
    xx, xx_diag = _cubic_kernel_sums(x, x, dim)
    yy, yy_diag = _cubic_kernel_sums(y, y, dim)
    xy, _ = _cubic_kernel_sums(x, y, dim)
    return ((xx - xx_diag) + (yy - yy_diag)) / (m * (m - 1)) - 2 * xy / (m * m)


def kid_subset_size(num_gen: int, num_real: int, subset_size: int = 1000) -> int:
    """The subset size actually used: clipped to the smaller side, as stylegan2-ada does."""
    return min(subset_size, num_gen, num_real)


def kernel_inception_distance(gen: np.ndarray, real: np.ndarray | RefStats, subsets: int = 100,
                              subset_size: int = 1000, seed: int = KID_SEED, device: str | torch.device = "cpu") -> dict:
    """KID of generated features ``gen`` (N, d) against ``real`` (an (M, d) array, or a reference whose
    memory-mapped rows are read one subset at a time).

    Returns ``{"mean", "std", "subsets", "subset_size"}`` (``subset_size`` after clipping).
    """
    num_real, read_real = row_reader(real)
    if subsets < 1:
        raise UserError(f"KID needs at least 1 subset, got --kid-subsets {subsets}")
    size = kid_subset_size(len(gen), num_real, subset_size)
    if size < 2:
        raise UserError(f"KID needs at least 2 samples a side, got {len(gen)} generated and {num_real} real")
    device = torch.device(device)
    rng = np.random.RandomState(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        gen_rows = rng.choice(len(gen), size, replace=False)  # the order of draws is torch-fidelity's
        real_rows_i = rng.choice(num_real, size, replace=False)
        x = torch.from_numpy(np.asarray(gen[gen_rows], np.float32)).to(device, torch.float64)
        y = torch.from_numpy(read_real(real_rows_i)).to(device, torch.float64)
        values[i] = mmd2_unbiased(x, y)
    return {"mean": float(values.mean()), "std": float(values.std()), "subsets": subsets, "subset_size": size}

