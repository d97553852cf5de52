"""The metrics themselves, on Inception features: FID, the Inception Score, intra-FID, KID and precision /
recall / density / coverage, the metric registry (:data:`sagan.registry.METRICS`) with their
registrations, the Inception network and its resize protocols (:data:`sagan.registry.RESIZERS`), and
reference statistics files.

A leaf below the evaluation stack: it imports torch, numpy, scipy, the registries and :mod:`sagan.io`,
nothing that draws samples, so config validation and ``--help`` ask it for the registered metric and
resize names without importing :mod:`sagan.metrics` (sessions, generator features, reports), which
builds on it and re-exports its public names (``from sagan.metrics import frechet_distance, load_ref``).
"""

from .frechet import ClassFrechetDistance, class_frechet_distance, frechet_distance, trace_sqrt_product
from .inception import FEATURE_DIM, InceptionV3
from .inception_score import inception_score
from .kid import kernel_inception_distance
from .prdc import precision_recall_density_coverage
from .registry import METRIC_NAMES, METRICS, Metric, MetricInputs, MetricOptions, register
from .resize import DEFAULT_RESIZE, RESIZE_MODES, RESIZERS, register_resizer
from .stats import FeatureStats, RefStats, load_ref, save_ref

__all__ = [
    "ClassFrechetDistance", "DEFAULT_RESIZE", "FEATURE_DIM", "FeatureStats", "InceptionV3", "METRICS", "METRIC_NAMES",
    "Metric", "MetricInputs", "MetricOptions", "RESIZERS", "RESIZE_MODES", "RefStats", "class_frechet_distance",
    "frechet_distance", "inception_score", "kernel_inception_distance", "load_ref",
    "precision_recall_density_coverage", "register", "register_resizer", "save_ref", "trace_sqrt_product",
]
