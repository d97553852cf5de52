"""An evaluation session: the reference, the metrics, the class pairing and the Inception network, set
up and checked once, before any sample is drawn (a mismatched reference, an impossible metric or a
missing weights file fails in seconds, not after the sampling); then the metrics of a generator or of
saved samples. ``evaluate.py metrics`` and the training loop's evaluations both run through it.

Distributed use: open and use a session on every accelerate process with the same arguments; results
exist on the main process only (``None`` elsewhere).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from ..sampling.latents import class_balanced_labels, model_classes
from ..scores.inception import InceptionV3
from ..scores.intra import check_labels
from ..scores.registry import METRICS, MetricOptions, resolve_metrics
from ..scores.resize import DEFAULT_RESIZE
from ..scores.stats import RefStats, load_ref
from . import evaluation as ev
from .classes import ClassPairing, pair_classes
from .evaluation import (check_reference_protocol, check_same_inception, compute_metrics, generator_features,
                         generator_source, sample_features)
from .weights import load_inception


@dataclass
class EvalSession:
    ref: RefStats
    inception: InceptionV3
    metrics: tuple[str, ...]  # registry names, in order
    pairing: ClassPairing  # generated class -> reference class
    options: MetricOptions = field(default_factory=MetricOptions)
    accelerator: Any = None
    skipped: dict[str, str] = field(default_factory=dict)  # {metric: why the inputs do not allow it}

    @property
    def main(self) -> bool:
        return self.accelerator is None or self.accelerator.is_main_process

    def of_generator(self, G: torch.nn.Module, num_samples: int, *, batch_size: int = 50, seed: int = 0,
                     truncation: float | None = None, progress: bool = True, protocol: dict | None = None
                     ) -> dict | None:
        """The session's metrics of ``num_samples`` class-balanced samples of ``G`` (latents from ``seed``)."""
        got = generator_features(G, num_samples, self.inception, batch_size=batch_size, seed=seed, truncation=truncation,
                                 accelerator=self.accelerator, progress=progress)
        source = generator_source(G, self.inception, batch_size=batch_size, seed=seed, truncation=truncation,
                                  accelerator=self.accelerator, to_ref=self.pairing.to_ref)
        return self._compute(got, protocol, source)

    def of_samples(self, images: np.ndarray, labels: np.ndarray, *, batch_size: int = 50, progress: bool = True,
                   protocol: dict | None = None) -> dict | None:
        """The session's metrics of saved uint8 images (N, H, W, 3) with their class labels."""
        got = sample_features(images, labels, self.inception, batch_size=batch_size, accelerator=self.accelerator,
                              progress=progress)
        return self._compute(got, protocol, None) if self.main else None

    def _compute(self, got, protocol: dict | None, source) -> dict | None:
        features, labels = (got[0], self.pairing.map(got[1])) if got is not None else (None, None)
        return compute_metrics(features, labels, self.ref, self.inception, metrics=self.metrics, options=self.options,
                               protocol=protocol, generator=source)


def open_session(ref: RefStats | str | os.PathLike, *, num_samples: int, labels: np.ndarray,
                 metrics: Iterable[str] | None = None, exclude: Iterable[str] = (), options: MetricOptions | None = None,
                 class_names: list[str] | None = None, where: str = "the generator", has_generator: bool = True,
                 has_labels: bool = True,
                 inception: InceptionV3 | None = None, inception_weights: str | None = None,
                 resize: str = DEFAULT_RESIZE, device: str | torch.device = "cpu", accelerator=None) -> EvalSession:
    """Set up and check an evaluation of ``num_samples`` generated images with class ``labels`` (the
    generator's classes; ``class_names`` pair them with the reference's by name).

    ``has_labels`` False (an unconditional model): metrics that need classes (intra-FID) are refused.
    ``metrics``: registry names, or None for every metric the inputs allow (less ``exclude``); a named
    metric they do not allow is a one-line error. ``inception`` defaults to the network of
    ``inception_weights`` under ``resize`` on ``device`` (loaded by the main process first: one download).
    """
    ref = ref if isinstance(ref, RefStats) else load_ref(ref)
    check_reference_protocol(ref, inception.resize if inception is not None else resize)
    options = options or MetricOptions(device=device)
    pairing = (pair_classes(class_names, ref, where) if has_labels else
               ClassPairing(None, "none (an unconditional model: the samples have no classes)"))
    mapped = pairing.map(labels)
    check_labels(mapped, ref, where)
    names, skipped = resolve_metrics(metrics, ref, num_samples, has_labels=has_labels, options=options,
                                     has_generator=has_generator, exclude=exclude)
    for name in names:
        if METRICS[name].check_inputs is not None:
            METRICS[name].check_inputs(mapped, ref, options)
    if inception is None:
        with accelerator.main_process_first() if accelerator is not None else contextlib.nullcontext():
            inception = load_inception(inception_weights, device=device, resize=resize)
    check_same_inception(ref, inception)
    return EvalSession(ref=ref, inception=inception, metrics=names, pairing=pairing, options=options,
                       accelerator=accelerator, skipped=skipped)


def dataset_reference(dataset, out: str | os.PathLike, *, source: str, inception_weights: str | None = None,
                      resize: str = DEFAULT_RESIZE, device: str | torch.device = "cpu", accelerator=None,
                      batch_size: int = 50, num_workers: int = 0, per_class: bool = True,
                      features_dtype: str = "float32") -> Path | None:
    """Reference statistics of ``dataset`` (yielding ``(uint8 (3, R, R), label)``) into ``out``: free space
    checked first, then the Inception network of ``inception_weights`` under ``resize`` (main process
    first), then :func:`~sagan.metrics.evaluation.reference_stats`. Returns the path on the main process."""
    ev.check_reference_space(out, len(dataset), per_class, features_dtype)  # before any Inception work
    with accelerator.main_process_first() if accelerator is not None else contextlib.nullcontext():
        inception = load_inception(inception_weights, device=device, resize=resize)
    return ev.reference_stats(dataset, inception, out, batch_size=batch_size, num_workers=num_workers,
                           accelerator=accelerator, features_dtype=features_dtype, per_class=per_class, source=source)


def evaluate_generator(G: torch.nn.Module, ref: RefStats | str | os.PathLike, num_samples: int = 5000,
                       inception: InceptionV3 | None = None, metrics: tuple[str, ...] = ("fid", "is"),
                       batch_size: int = 50, seed: int = 0, accelerator=None, progress: bool = False,
                       options: MetricOptions | None = None, class_names: list[str] | None = None,
                       protocol: dict | None = None, truncation: float | None = None) -> dict | None:
    """The ``metrics`` of ``num_samples`` class-balanced samples of ``G`` against a reference, in one call.

    The training loop's path (:class:`sagan.training.watch.RunWatch`): :func:`open_session` checks the
    reference, the metrics and the class pairing for G's class-balanced labels, then
    :meth:`EvalSession.of_generator` samples and measures. ``G`` samples in eval mode with its BN statistics
    mode (:mod:`sagan.sampling.bn_stats`) on its own device; ``inception`` (which carries the resize protocol)
    defaults to ``load_inception(device=G's)``; ``class_names`` (G's classes) pair G's classes with the
    reference's by name. Returns the result dict (report.json keys) on the main process, ``None`` on the others.
    """
    device = next(G.parameters()).device
    labels = class_balanced_labels(num_samples, model_classes(G.num_classes)).numpy()
    session = open_session(ref, num_samples=num_samples, labels=labels, metrics=metrics,
                           options=options or MetricOptions(device=device, progress=progress), class_names=class_names,
                           has_labels=G.num_classes > 0, inception=inception, device=device, accelerator=accelerator)
    return session.of_generator(G, num_samples, batch_size=batch_size, seed=seed, truncation=truncation,
                                progress=progress, protocol=protocol)
