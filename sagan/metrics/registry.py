"""The metric registry, defined in :mod:`sagan.scores.registry` (a leaf that config validation and
``--help`` import without the evaluation stack); its names stay importable from here
(``from sagan.metrics.registry import METRICS, Metric, register, scalars``)."""

from ..scores.registry import (DC_K, METRIC_NAMES, METRICS, PR_K, Metric, MetricInputs, MetricOptions,
                               parse_metric_names, register, resolve_metrics, scalars, unavailable_reason)

__all__ = ["DC_K", "METRICS", "METRIC_NAMES", "Metric", "MetricInputs", "MetricOptions", "PR_K", "parse_metric_names",
           "register", "resolve_metrics", "scalars", "unavailable_reason"]
