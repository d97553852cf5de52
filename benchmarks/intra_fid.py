"""intra-FID of 1000 classes x 50 generated images (the balanced protocol): ours (per-class n1 x n2
cross products of the feature rows, float64) vs the per-class scipy route (2048 x 2048 covariances of
each class, pytorch-fid's ``calculate_frechet_distance``), timed on a few classes and extrapolated.
Target: ours under a minute for 1000 classes on 2 CPU cores.

    python benchmarks/intra_fid.py                          # 1000 classes, 50 gen / 1300 real per class
    python benchmarks/intra_fid.py --classes 100 --ref-classes 1

Real rows: ``--real-per-class`` images per class, drawn from a pool of ``--pool`` distinct blocks (class c
uses block c mod pool) so that 1000 x 1300 x 2048 float32 (10 GB) need not sit in RAM; the arithmetic per
class is the same as with distinct data.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def features(rng, n, d, mix):
    return np.maximum(rng.standard_normal((n, d), dtype=np.float32) @ mix, 0)  # nonnegative, correlated


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--gen-per-class", type=int, default=50)
    ap.add_argument("--real-per-class", type=int, default=1300)
    ap.add_argument("--pool", type=int, default=4)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--ref-classes", type=int, default=2, help="classes timed on the scipy route (>= 1)")
    args = ap.parse_args()
    args.ref_classes = max(1, min(args.ref_classes, args.classes))

    from pytorch_fid.fid_score import calculate_frechet_distance

    from sagan.metrics import ClassFrechetDistance
    from sagan.scores.frechet import class_indices

    rng = np.random.default_rng(0)
    d, C = args.dim, args.classes
    mix = (rng.standard_normal((d, d)) / np.sqrt(d)).astype(np.float32)
    gen = features(rng, C * args.gen_per_class, d, mix)
    labels = np.repeat(np.arange(C), args.gen_per_class)
    pool = [features(rng, args.real_per_class, d, mix * (1 + 0.05 * k)) for k in range(args.pool)]
    groups = {c: gen[i] for c, i in class_indices(labels).items()}

    t = time.perf_counter()
    distance = ClassFrechetDistance()  # the per-class step of sagan.scores.intra.intra_fid_of
    per_class = {c: distance(groups[c], pool[c % args.pool]) for c in range(C)}
    mean = float(np.mean(list(per_class.values())))
    t_ours = time.perf_counter() - t
    print(f"ours: intra-FID {mean:.4f} over {C} classes ({args.gen_per_class} gen / {args.real_per_class} real "
          f"per class, {d}-d) in {t_ours:.1f}s ({1000 * t_ours / C:.1f} ms/class)")

    t = time.perf_counter()
    diffs = []
    for c in range(args.ref_classes):
        g, r = groups[c].astype(np.float64), pool[c % args.pool].astype(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = float(calculate_frechet_distance(g.mean(0), np.cov(g, rowvar=False), r.mean(0), np.cov(r, rowvar=False)))
        diffs.append(abs(per_class[c] - ref) / ref)
    t_ref = (time.perf_counter() - t) / args.ref_classes
    print(f"scipy route: {t_ref:.1f}s/class on {args.ref_classes} classes -> {t_ref * C / 60:.1f} min for {C} "
          f"(extrapolated) | speedup {t_ref * C / t_ours:.0f}x | max rel. diff of per-class FID {max(diffs):.2e} "
          "(scipy's sqrtm of the singular 50-image covariance is the less accurate side)")


if __name__ == "__main__":
    main()
