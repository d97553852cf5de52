"""FID of generated features against a reference, and its bootstrap confidence interval.

The interval (``--fid-bootstrap N``) resamples the generated features with replacement N times, with
the reference statistics held fixed, and reports the 2.5th and 97.5th percentiles of the N FIDs (the
percentile bootstrap, Efron & Tibshirani 1993, ch. 13): how much FID moves with the draw of the
generated samples. A resample is a weighting of the rows by multinomial counts w (sum N), so its mean
and covariance come from one weighted product X^T diag(w) X on the evaluation device, in float64 (FID
subtracts traces of similar size, so float32 would show in the interval's digits).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import UserError
from .frechet import frechet_distance
from .stats import FeatureStats, RefStats

CI_LEVEL = 0.95


def fid_of(features: np.ndarray, ref: RefStats) -> float:
    stats = FeatureStats(features.shape[1])
    for i in range(0, len(features), 4096):  # float64 in chunks: never a second full-size copy
        stats.update(features[i : i + 4096])
    return frechet_distance(stats.mean, stats.cov(), ref.mu, ref.sigma)


def fid_bootstrap_interval(features: np.ndarray, ref: RefStats, resamples: int, seed: int = 0,
                           device: str | torch.device = "cpu", level: float = CI_LEVEL) -> list[float]:
    """[low, high]: the percentile interval of FID over ``resamples`` bootstrap resamples of ``features``."""
    n = len(features)
    if resamples < 2:
        raise UserError(f"--fid-bootstrap needs at least 2 resamples for an interval, got {resamples}")
    if n < 2:
        raise UserError(f"a bootstrap of FID needs at least 2 samples, got {n}")
    device = torch.device(device)
    x = torch.from_numpy(np.ascontiguousarray(features)).to(device, torch.float64)
    centre = x.mean(0)
    x -= centre  # weighted moments of centred rows: no cancellation in X^T W X - n mu mu^T
    rng = np.random.default_rng(seed)
    fids = []
    for _ in range(resamples):
        w = torch.from_numpy(np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)).to(device)
        mu = (w @ x) / n
        cov = ((x * w[:, None]).T @ x - n * torch.outer(mu, mu)) / (n - 1)
        fids.append(frechet_distance((mu + centre).cpu().numpy(), cov.cpu().numpy(), ref.mu, ref.sigma))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(fids, [tail, 100 - tail])
    return [float(low), float(high)]
