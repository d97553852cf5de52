"""Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))), mean and std over splits.

As improved-GAN's original code: p(y|x) is the softmax of the **bias-free** 1008-way logits, the samples
are cut into 10 contiguous splits (split i = rows i*N//10 .. (i+1)*N//10, torch-fidelity's boundaries,
without its shuffle), p(y) is each split's mean, and the std is the population std (``np.std``).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import UserError


def inception_score(logits: np.ndarray | torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """(mean, std) of the Inception Score over ``splits`` contiguous splits of the (N, classes) logits."""
    x = torch.as_tensor(np.asarray(logits) if not torch.is_tensor(logits) else logits)
    n = len(x)
    if splits < 1:
        raise UserError(f"the Inception Score needs at least 1 split, got {splits}")
    if n < splits:
        raise UserError(f"{n} samples cannot be cut into {splits} Inception Score splits; "
                        f"use at least {splits} samples (50000 for the paper's protocol) or fewer --splits")
    scores = []
    for i in range(splits):  # float64 one split at a time (50k x 1008 doubles would be 400 MB per copy)
        lo, hi = i * n // splits, (i + 1) * n // splits
        log_p = torch.log_softmax(x[lo:hi].to(torch.float64), dim=1)
        p = log_p.exp()
        log_q = p.mean(0).clamp_min(torch.finfo(torch.float64).tiny).log()  # 0 * log 0 -> 0
        kl = (p * (log_p - log_q)).sum(1).mean()
        scores.append(float(kl.exp()))
    return float(np.mean(scores)), float(np.std(scores))


def logits_of(features: np.ndarray, inception: torch.nn.Module, chunk: int = 4096) -> np.ndarray:
    """Bias-free logits (N, 1008) float32 of pool features (``features @ fc.weight.T``), on CPU in chunks."""
    w = inception.fc.weight.detach().float().cpu()
    if not len(features):
        return np.empty((0, w.shape[0]), np.float32)
    return np.concatenate([(torch.from_numpy(np.asarray(features[i : i + chunk], np.float32)) @ w.T).numpy()
                           for i in range(0, len(features), chunk)])
