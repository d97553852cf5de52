"""Frechet distance on 2048-d statistics: ours (Cholesky + symmetric eigvalsh, float64) vs pytorch-fid's
``calculate_frechet_distance`` (scipy ``sqrtm`` of the non-symmetric product). Target: >= 10x faster,
equal within 1e-6 relative.

    python benchmarks/frechet.py                 # 2048-d, statistics of 4096 correlated samples a side
    python benchmarks/frechet.py --singular      # also covariances of 1000 samples (rank-deficient)
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def stats(rng, n, d, mix):
    x = rng.standard_normal((n, d)) @ mix + rng.standard_normal(d) * 0.1
    x = np.maximum(x, 0)  # nonnegative like post-ReLU pool features
    return x.mean(0), np.cov(x, rowvar=False)


def compare(label, mu1, s1, mu2, s2, repeat):
    """Best of ``repeat`` interleaved runs of each side (a shared machine's load hits both alike)."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    from sagan.metrics import frechet_distance

    t_ours = t_ref = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        ours = frechet_distance(mu1, s1, mu2, s2)
        t_ours = min(t_ours, time.perf_counter() - t)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy's sqrtm `disp` deprecation
            t = time.perf_counter()
            theirs = float(calculate_frechet_distance(mu1, s1, mu2, s2))
            t_ref = min(t_ref, time.perf_counter() - t)
    print(f"{label}: ours {ours:.6f} in {t_ours:.3f}s | pytorch-fid {theirs:.6f} in {t_ref:.3f}s | "
          f"speedup {t_ref / t_ours:.1f}x | rel. diff {abs(ours - theirs) / abs(theirs):.2e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--samples", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=2, help="best of N interleaved runs of each side")
    ap.add_argument("--singular", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    d = args.dim
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    mu1, s1 = stats(rng, args.samples, d, mix)
    mu2, s2 = stats(rng, args.samples, d, mix * 1.1 + rng.standard_normal((d, d)) * 0.02)
    compare(f"{d}-d full rank", mu1, s1, mu2, s2, args.repeat)
    if args.singular:
        mu3, s3 = stats(rng, 1000, d, mix)
        mu4, s4 = stats(rng, 1000, d, mix * 1.1)
        compare(f"{d}-d rank 999", mu3, s3, mu4, s4, args.repeat)


if __name__ == "__main__":
    main()
