"""The metric registry: every metric once, under its name, with its label, direction and formatting.

``evaluate.py metrics --metrics fid,is,kid``, the training loop's evaluations (``train.eval_metrics``),
``report.json``, ``report.md`` and ``metrics.jsonl`` all iterate over :data:`METRICS`.

Adding a metric: write its computation in its own module (features in, number out, tested against a
reference implementation), register it below with a ``compute(inputs) -> {report key: value}`` adapter,
and add a test (or register it from your own module, loaded as a plugin: :mod:`sagan.plugins`). Nothing
else changes: the CLI's ``--metrics``, the reports and the history pick it up.
A metric that draws its own samples (intra-FID's projection protocol) sets ``every_process``: its
``compute`` runs on every process, with the generator in ``inputs.generator``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import numpy as np

from ..errors import UserError
from ..registry import METRICS
from .fid import fid_bootstrap_interval, fid_of
from .inception_score import inception_score, logits_of
from .intra import (PROTOCOLS, GeneratorSource, check_intra_fid_inputs, intra_fid_of, projection_intra_fid,
                    protocol_line)
from .kid import kernel_inception_distance
from .prdc import precision_recall_density_coverage
from .stats import RefStats

PR_K, DC_K = 3, 5  # Kynkaanniemi et al. 2019 (k = 3); Naeem et al. 2020 (k = 5)


@dataclass
class MetricOptions:
    splits: int = 10  # Inception Score splits
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    prdc_samples: int = 10_000  # real and generated feature rows for precision/recall/density/coverage
    fid_bootstrap: int = 0  # resamples for the FID confidence interval (0: none)
    seed: int = 0  # subsampling of the precision/recall rows, bootstrap resamples; the projection protocol's latents
    intra_fid_protocol: str = "balanced"  # intra-FID: "balanced" (the evaluation samples) or "projection"
    per_class_samples: int = 5000  # intra-FID's projection protocol: images generated per class
    device: object = "cpu"  # where KID, precision/recall and the bootstrap run
    progress: bool = True


@dataclass
class MetricInputs:
    """What a metric's ``compute`` sees: generated features, their labels as reference class indices (or
    None), the reference, the Inception network (its fc weights give IS its logits) and the options.
    ``protocol`` collects one line per metric about how it was computed (for the report). Off the main
    process (``every_process`` metrics only) ``features`` and ``labels`` are None."""

    features: np.ndarray
    labels: np.ndarray | None
    ref: RefStats
    inception: object
    options: MetricOptions
    generator: GeneratorSource | None = None  # more samples of the generator, for metrics that draw their own
    protocol: dict = field(default_factory=dict)
    _shared: dict = field(default_factory=dict)

    def shared(self, key: str, fn: Callable[["MetricInputs"], dict]) -> dict:
        """A computation several metrics share (precision/recall/density/coverage), done once."""
        if key not in self._shared:
            self._shared[key] = fn(self)
        return self._shared[key]


@dataclass(frozen=True)
class Metric:
    name: str  # --metrics, train.eval_metrics, metrics.jsonl
    label: str  # tables and console
    higher_is_better: bool
    key: str  # report.json key: a number, or {"mean", "std"}
    compute: Callable[[MetricInputs], dict]
    needs_labels: bool = False  # generated class labels
    needs_real_rows: bool = False  # the reference's feature rows (not a plain pytorch-fid mu/sigma file)
    min_samples: int = 2
    digits: int = 2
    scale: float = 1.0  # displayed value = value * scale (KID x 10^3, as stylegan2-ada prints it)
    every_process: bool = False  # compute runs on every process (it draws samples itself); result on the main one
    # labels (reference classes), ref, options -> one-line UserError before any work when they cannot do
    check_inputs: Callable[[np.ndarray, RefStats, MetricOptions], None] | None = None
    # options, whether a generator is at hand -> why these options cannot work here (always an error)
    option_problem: Callable[[MetricOptions, bool], str | None] | None = None

    def value(self, result: Mapping) -> float | None:
        v = result.get(self.key)
        return float(v["mean"]) if isinstance(v, Mapping) else (None if v is None else float(v))

    def format_value(self, v: float) -> str:
        """A scalar as tables and log lines show it (scaled, with the metric's digits)."""
        return f"{v * self.scale:.{self.digits}f}"

    def format(self, result: Mapping) -> str:
        v = result.get(self.key)
        if v is None:
            return "—"
        if isinstance(v, Mapping):
            return f"{self.format_value(v['mean'])} ± {self.format_value(v['std'])}"
        return self.format_value(v)

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is better than ``b``."""
        return a > b if self.higher_is_better else a < b

    def worse_by(self, value: float, best: float, margin: float) -> bool:
        """Whether ``value`` is worse than ``best`` by more than ``margin`` (relative)."""
        if self.higher_is_better:
            return value < best * (1 - margin)
        return value > best * (1 + margin)

    @property
    def header(self) -> str:
        return f"{self.label} {'↑' if self.higher_is_better else '↓'}"


# --------------------------------------------------------------------------------------------------
# adapters: inputs -> report keys


def _fid(inp: MetricInputs) -> dict:
    out = {"fid": fid_of(inp.features, inp.ref)}
    n = inp.options.fid_bootstrap
    if n:
        out["fid_ci"] = fid_bootstrap_interval(inp.features, inp.ref, n, inp.options.seed, inp.options.device)
        inp.protocol["fid_ci"] = (f"95% percentile bootstrap: {n} resamples of the {len(inp.features)} generated "
                                  "features with replacement, reference fixed")
    return out


def _inception_score(inp: MetricInputs) -> dict:
    mean, std = inception_score(logits_of(inp.features, inp.inception), inp.options.splits)
    return {"inception_score": {"mean": mean, "std": std}}


def _intra_fid(inp: MetricInputs) -> dict:
    o = inp.options
    if o.intra_fid_protocol == "projection":  # every process draws its share of each class
        got = projection_intra_fid(inp.generator, inp.ref, o.per_class_samples, o.device, o.progress)
        if got is None:
            return {}
    else:
        if inp.features is None:
            return {}
        got = intra_fid_of(inp.features, inp.labels, inp.ref, o.device, o.progress)
    inp.protocol["intra_fid"] = protocol_line(o.intra_fid_protocol, o.per_class_samples, inp.labels, o.seed)
    return {"intra_fid": got[0], "per_class_fid": {str(c): v for c, v in got[1].items()}}


def _check_intra_fid(labels: np.ndarray, ref: RefStats, options: MetricOptions) -> None:
    if options.intra_fid_protocol not in PROTOCOLS:
        raise UserError(f"intra-FID protocol {options.intra_fid_protocol!r} is unknown; use one of {', '.join(PROTOCOLS)}")
    if options.intra_fid_protocol == "balanced":
        check_intra_fid_inputs(labels, ref)


def _intra_fid_option_problem(options: MetricOptions, has_generator: bool) -> str | None:
    if options.intra_fid_protocol == "projection" and not has_generator:
        return "its projection protocol generates images per class and needs a generator (--checkpoint)"
    return None


def _kid(inp: MetricInputs) -> dict:
    o = inp.options
    kid = kernel_inception_distance(inp.features, inp.ref, o.kid_subsets, o.kid_subset_size, device=o.device)
    clipped = (f" (clipped from {o.kid_subset_size} to the smaller side, as stylegan2-ada does)"
               if kid["subset_size"] < o.kid_subset_size else "")
    inp.protocol["kid"] = (f"unbiased MMD^2, cubic kernel (x.y/d + 1)^3, {kid['subsets']} subsets of "
                           f"{kid['subset_size']}{clipped} drawn as torch-fidelity does (RandomState(2020)), "
                           f"all {len(inp.features)} generated vs all {inp.ref.num_feature_rows} real rows")
    return {"kid": {"mean": kid["mean"], "std": kid["std"]}}


def _subsample(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= size else np.sort(rng.choice(n, size, replace=False))


def _prdc(inp: MetricInputs) -> dict:
    o, ref = inp.options, inp.ref
    rng = np.random.default_rng(o.seed)
    real_rows = _subsample(ref.num_feature_rows, o.prdc_samples, rng)
    gen_rows = _subsample(len(inp.features), o.prdc_samples, rng)
    inp.protocol["precision_recall"] = (f"k = {PR_K} (precision, recall), k = {DC_K} (density, coverage) on "
                                        f"{len(real_rows)} of {ref.num_feature_rows} real and {len(gen_rows)} of "
                                        f"{len(inp.features)} generated pool features (seed {o.seed})")
    real, gen = ref.features(real_rows), np.asarray(inp.features[gen_rows], np.float32)
    return precision_recall_density_coverage(real, gen, PR_K, DC_K, o.device)


def _prdc_part(name: str) -> Callable[[MetricInputs], dict]:
    return lambda inp: {name: inp.shared("prdc", _prdc)[name]}


# --------------------------------------------------------------------------------------------------
# the registry

# METRICS (sagan.registry.METRICS) is filled below


def register(metric: Metric) -> Metric:
    return METRICS.register(metric.name, metric)


register(Metric("fid", "FID", False, "fid", _fid))
register(Metric("is", "IS", True, "inception_score", _inception_score))
register(Metric("intra_fid", "intra-FID", False, "intra_fid", _intra_fid, needs_labels=True, needs_real_rows=True,
                every_process=True, check_inputs=_check_intra_fid, option_problem=_intra_fid_option_problem))
register(Metric("kid", "KID ×10³", False, "kid", _kid, needs_real_rows=True, scale=1e3))
for _name in ("precision", "recall", "density", "coverage"):
    register(Metric(_name, _name.capitalize(), True, _name, _prdc_part(_name), needs_real_rows=True,
                    min_samples=DC_K + 1, digits=3))

METRIC_NAMES = METRICS.names  # live: a metric registered later (a plugin) is in it


def parse_metric_names(spec: str | Iterable[str], option: str = "--metrics") -> tuple[str, ...]:
    """``"fid,is,kid"`` (or a sequence) -> registered names in the given order, duplicates dropped."""
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise UserError(f"{option}: unknown metric {unknown[0]!r}; choose from {', '.join(METRIC_NAMES)}")
    if not names:
        raise UserError(f"{option} is empty; choose from {', '.join(METRIC_NAMES)}")
    return tuple(dict.fromkeys(names))


def unavailable_reason(metric: Metric, ref: RefStats, num_samples: int, has_labels: bool) -> str | None:
    """Why ``metric`` cannot be computed from these inputs, or None when it can (then it is skipped when
    not asked for by name)."""
    if metric.needs_labels and not has_labels:
        return "the samples have no class labels"
    if metric.needs_real_rows and not ref.has_classes:
        return f"the reference {ref.path} holds no feature rows (a pytorch-fid mu/sigma file?)"
    least = min(num_samples, ref.num_feature_rows if metric.needs_real_rows else num_samples)
    if least < metric.min_samples:
        return f"it needs at least {metric.min_samples} samples a side"
    return None


def resolve_metrics(requested: Iterable[str] | None, ref: RefStats, num_samples: int, has_labels: bool,
                    options: MetricOptions | None = None, has_generator: bool = False,
                    exclude: Iterable[str] = ()) -> tuple[tuple[str, ...], dict[str, str]]:
    """(names to compute, {skipped name: why}). ``requested=None``: every registered metric the inputs
    allow (the others are skipped with their reason), less ``exclude``; an explicitly requested one that
    they do not allow, or one whose options cannot work here, is a one-line error."""
    names = METRIC_NAMES if requested is None else parse_metric_names(requested)
    options = options or MetricOptions()
    chosen, skipped = [], {}
    for name in (n for n in names if n not in set(exclude)):
        metric = METRICS[name]
        problem = metric.option_problem(options, has_generator) if metric.option_problem else None
        if problem:
            raise UserError(f"cannot compute {name}: {problem}")
        why = unavailable_reason(metric, ref, num_samples, has_labels)
        if why is None:
            chosen.append(name)
        elif requested is None:
            skipped[name] = why
        else:
            raise UserError(f"cannot compute {name}: {why}")
    if not chosen:
        raise UserError(f"no metric left to compute ({', '.join(names)} excluded or not possible here)")
    return tuple(chosen), skipped


def scalars(result: Mapping) -> dict[str, float]:
    """{metric name: float} of the metrics present in ``result`` (means for {mean, std} metrics), for
    TensorBoard and ``metrics.jsonl``."""
    return {name: m.value(result) for name, m in METRICS.items() if result.get(m.key) is not None}
