"""KID and precision/recall/density/coverage from features, seconds: ours vs the reference
implementations on the same features, side by side in one run (torch-fidelity's KID, the ``prdc``
package), with the ratio and the largest difference of the values.

Target: on a 2-core CPU, KID (100 subsets of 1000) plus precision/recall/density/coverage at
10k vs 10k, together, in under 60 s. The features are synthetic stand-ins for Inception pool features
(2048-d, non-negative, near a 64-d manifold, so nearest neighbours mean something), since timing does
not depend on their values.

    python benchmarks/metrics.py                         # 10k vs 10k, the issue's setting (prdc takes minutes)
    python benchmarks/metrics.py --num 3000 --skip-prdc-reference
    python benchmarks/metrics.py --device cuda --num 50000 --skip-prdc-reference
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time

import numpy as np
import torch


def features(n: int, seed: int, spread: float = 1.0, dim: int = 2048) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(99).standard_normal((64, dim)) / 8
    latent = rng.standard_normal((n, 64)) * spread
    return np.maximum(latent @ basis + 0.3 + 0.05 * rng.standard_normal((n, dim)), 0).astype(np.float32)


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", type=int, default=10_000, help="real and generated features each")
    ap.add_argument("--kid-subsets", type=int, default=100)
    ap.add_argument("--kid-subset-size", type=int, default=1000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-prdc-reference", action="store_true", help="do not time the prdc package (slow)")
    args = ap.parse_args()

    from sagan.scores.kid import kernel_inception_distance
    from sagan.scores.prdc import precision_recall_density_coverage

    real, gen = features(args.num, 0), features(args.num, 1, spread=1.05)
    dev = torch.device(args.device)
    print(f"{args.num} real + {args.num} generated 2048-d features, {dev}, {torch.get_num_threads()} threads")
    kid, t_kid = timed(kernel_inception_distance, gen, real, args.kid_subsets, args.kid_subset_size, device=dev)
    prdc, t_prdc = timed(precision_recall_density_coverage, real, gen, device=dev)
    print(f"ours: KID ({args.kid_subsets} x {kid['subset_size']}) {t_kid:.1f} s + precision/recall/density/coverage "
          f"{t_prdc:.1f} s = {t_kid + t_prdc:.1f} s (target < 60 s)")
    print(f"      KID {kid['mean']:.6g} ± {kid['std']:.3g}; " + ", ".join(f"{k} {v:.4f}" for k, v in prdc.items()))

    from torch_fidelity.metric_kid import kid_features_to_metric

    theirs, t_theirs = timed(kid_features_to_metric, torch.from_numpy(gen), torch.from_numpy(real),
                             kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size, rng_seed=2020,
                             verbose=False, kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None,
                             kid_kernel_poly_coef0=1)
    rel = abs(kid["mean"] - theirs["kernel_inception_distance_mean"]) / abs(kid["mean"])
    print(f"torch-fidelity KID (float32 numpy): {t_theirs:.1f} s | ratio {t_theirs / t_kid:.2f}x | "
          f"relative difference {rel:.1e} (its float32 sums)")
    if args.skip_prdc_reference:
        return
    from prdc import compute_prdc

    def reference():
        with contextlib.redirect_stdout(io.StringIO()):
            pr, dc = compute_prdc(real, gen, nearest_k=3), compute_prdc(real, gen, nearest_k=5)
        return {"precision": pr["precision"], "recall": pr["recall"], "density": dc["density"], "coverage": dc["coverage"]}

    ref, t_ref = timed(reference)
    diff = max(abs(prdc[k] - ref[k]) for k in ref)
    print(f"prdc package (k=3 and k=5 runs): {t_ref:.1f} s | ratio {t_ref / t_prdc:.2f}x | max |difference| {diff:.1e}")


if __name__ == "__main__":
    main()
