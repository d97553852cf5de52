"""Evaluation metrics: Inception Score, FID and intra-FID with pytorch-fid's port of the 2015 TF Inception.

Modules: ``inception`` (the network), ``weights`` (finding/loading its weights), ``features`` (batched,
sharded extraction), ``stats`` (streaming float64 statistics, reference ``.npz``), ``frechet`` (Frechet
distance, intra-FID), ``inception_score``, ``evaluation`` (putting it together), ``report`` (json/md/png).

API for the training loop (FID every N steps)::

    from sagan.metrics import load_inception, load_ref, evaluate_generator
    inception = load_inception(weights=None, device=device)      # --inception-weights / env / hub cache / download
    ref = load_ref(cfg.data.ref_stats)                           # from `evaluate.py stats`
    result = evaluate_generator(G_ema, ref, num_samples=5000, inception=inception, batch_size=50, seed=0,
                                splits=10, intra=False, accelerator=accelerator)
    # main process: {"fid": float, "inception_score": {"mean": float, "std": float}, "num_samples": int}
    # (+ "intra_fid", "per_class_fid" with intra=True); other processes: None

Lower level: ``frechet_distance(mu1, sigma1, mu2, sigma2)`` (float64), ``inception_score(logits, splits=10)``
-> (mean, std), ``class_frechet_distance(feats1, feats2)`` (exact FID of two small feature sets without
d x d matrices), ``compute_metrics(features, labels, ref, inception)``.
"""

from .evaluation import compute_metrics, evaluate_generator, generator_features, reference_stats, sample_features
from .frechet import ClassFrechetDistance, class_frechet_distance, frechet_distance, intra_fid, trace_sqrt_product
from .inception import FEATURE_DIM, InceptionV3
from .inception_score import inception_score
from .stats import FeatureStats, RefStats, load_ref, save_ref
from .weights import WEIGHTS_FILENAME, WEIGHTS_URL, load_inception, resolve_weights

__all__ = [
    "ClassFrechetDistance", "FEATURE_DIM", "FeatureStats", "InceptionV3", "RefStats", "WEIGHTS_FILENAME", "WEIGHTS_URL",
    "class_frechet_distance", "compute_metrics", "evaluate_generator", "frechet_distance", "generator_features",
    "inception_score", "intra_fid", "load_inception", "load_ref", "reference_stats", "resolve_weights",
    "sample_features", "save_ref", "trace_sqrt_product",
]
