"""Evaluation metrics with pytorch-fid's port of the 2015 TF Inception: FID, IS, intra-FID, KID,
precision / recall / density / coverage, and an FID bootstrap interval, under a named resize protocol.

An evaluation set up and checked once (reference, metrics, class pairing, Inception), then run, as
``evaluate.py metrics`` and the training loop do it::

    from sagan.metrics.session import open_session
    session = open_session("refs/imagenet128_train.npz", num_samples=5000, labels=labels, metrics=("fid", "is"),
                           inception_weights=None, resize="tf1", device=device, accelerator=accelerator)
    result = session.of_generator(G_ema, 5000, seed=0)

or in one call::

    from sagan.metrics import evaluate_generator, load_inception, load_ref
    from sagan.metrics.registry import METRICS, scalars
    from sagan.metrics.history import append_record
    inception = load_inception(weights=None, device=device, resize=cfg.train.fid_resize)  # "tf1" by default
    ref = load_ref(cfg.data.ref_stats)                            # from `evaluate.py stats --resize tf1`
    result = evaluate_generator(G_ema, ref, num_samples=5000, inception=inception,
                                metrics=cfg.train.eval_metrics, batch_size=50, seed=0,
                                accelerator=accelerator, class_names=class_names)
    # main process: report.json keys, e.g. {"fid": float, "inception_score": {"mean", "std"},
    #               "kid": {"mean", "std"}, "precision": float, ..., "num_samples": int}; others: None
    append_record(outdir / "metrics.jsonl", {"step": step, "values": scalars(result), ...})

A reference made under another resize protocol or Inception weights is refused (``check_same_inception``).
Validation lists for configs: ``resize.RESIZE_MODES`` and ``registry.METRIC_NAMES``. The metrics themselves,
their registry, the Inception network, the resize protocols and reference files are :mod:`sagan.scores` (a leaf
that config validation imports without this package); their public names are re-exported here.

Lower level: ``frechet_distance(mu1, sigma1, mu2, sigma2)`` (float64), ``inception_score(logits, splits=10)``
-> (mean, std), ``class_frechet_distance(feats1, feats2)`` (exact FID of two small feature sets without
d x d matrices), ``kernel_inception_distance(gen, real)``, ``precision_recall_density_coverage(real, gen)``,
``compute_metrics(features, labels, ref, inception, metrics=...)``.
"""

from .evaluation import compute_metrics, generator_features, reference_stats, sample_features
from ..scores.frechet import ClassFrechetDistance, class_frechet_distance, frechet_distance, trace_sqrt_product
from ..scores.inception import FEATURE_DIM, InceptionV3
from ..scores.inception_score import inception_score
from ..scores.kid import kernel_inception_distance
from ..scores.prdc import precision_recall_density_coverage
from ..scores.registry import METRIC_NAMES, METRICS, MetricOptions
from ..scores.resize import DEFAULT_RESIZE, RESIZE_MODES
from .session import evaluate_generator
from ..scores.stats import FeatureStats, RefStats, load_ref, save_ref
from .weights import WEIGHTS_FILENAME, WEIGHTS_URL, load_inception, resolve_weights

__all__ = [
    "ClassFrechetDistance", "DEFAULT_RESIZE", "FEATURE_DIM", "FeatureStats", "InceptionV3", "METRICS", "METRIC_NAMES",
    "MetricOptions", "RESIZE_MODES", "RefStats", "WEIGHTS_FILENAME", "WEIGHTS_URL", "class_frechet_distance",
    "compute_metrics", "evaluate_generator", "frechet_distance", "generator_features", "inception_score",
    "kernel_inception_distance", "load_inception", "load_ref", "precision_recall_density_coverage",
    "reference_stats", "resolve_weights", "sample_features", "save_ref", "trace_sqrt_product",
]
