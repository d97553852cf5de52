"""Putting it together: reference statistics of a dataset, features of samples or a generator, and the
metrics of those features against a reference (whichever of :data:`registry.METRICS` are asked for).
:mod:`session` sets an evaluation up and checks it before any of this runs.

Distributed use: call these on every accelerate process with the same arguments; features are gathered
step by step and the results (files, metric dicts) exist on the main process only (``None`` elsewhere).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..io import check_free_space, open_memmap_reserved
from ..sampling.latents import class_balanced_labels, model_classes, sample_latents
from ..scores.frechet import class_indices
from ..scores.inception import FEATURE_DIM, InceptionV3
from ..scores.intra import GeneratorSource, check_labels
from ..scores.registry import METRICS, MetricInputs, MetricOptions
from ..scores.resize import resize_description
from ..scores.stats import FeatureStats, RefStats, ref_file_bytes, save_ref
from .features import array_batches, dataset_batches, extract_features, generator_batches, shard_batches


def _rank_world(accelerator) -> tuple[int, int, bool]:
    if accelerator is None:
        return 0, 1, True
    return accelerator.process_index, accelerator.num_processes, accelerator.is_main_process


def _collect(steps, num_items: int, keep: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """All gathered features (N, d) float32 and labels (N,), in index order (main process)."""
    feats = np.empty((num_items, FEATURE_DIM), np.float32) if keep else None
    labels = np.empty(num_items, np.int64) if keep else None
    for idx, y, f in steps:
        if keep:
            feats[idx], labels[idx] = f, y
    return (feats, labels) if keep else None


# --------------------------------------------------------------------------------------------------
# feature sources


def sample_features(images: np.ndarray, labels: np.ndarray, inception: InceptionV3, batch_size: int = 50,
                    accelerator=None, progress: bool = True):
    """Features of uint8 (N, H, W, 3) images; ``(features, labels)`` on the main process."""
    rank, world, main = _rank_world(accelerator)
    batches = shard_batches(len(images), batch_size, rank, world)
    steps = extract_features(inception, array_batches(images, labels, batches), len(batches), len(images),
                             accelerator, desc="inception (samples)", progress=progress)
    return _collect(steps, len(images), main)


def generator_features(G: torch.nn.Module, num_samples: int, inception: InceptionV3, batch_size: int = 50,
                       seed: int = 0, classes: list[int] | None = None, truncation: float | None = None,
                       accelerator=None, progress: bool = True, desc: str = "generate + inception"):
    """Features of ``num_samples`` class-balanced samples of ``G`` (labels cycle through ``classes``,
    default all of G's): 50 per class for 50k ImageNet samples. Latents come from one seeded CPU generator,
    so the samples do not depend on the batch size or the number of processes."""
    classes = model_classes(G.num_classes) if classes is None else classes
    labels = class_balanced_labels(num_samples, classes)
    z = sample_latents(num_samples, G.z_dim, seed, truncation)
    rank, world, main = _rank_world(accelerator)
    batches = shard_batches(num_samples, batch_size, rank, world)
    device = next(inception.parameters()).device
    steps = extract_features(inception, generator_batches(G, z, labels, batches, device), len(batches),
                             num_samples, accelerator, desc=desc, progress=progress)
    return _collect(steps, num_samples, main)


# --------------------------------------------------------------------------------------------------
# reference statistics


def reference_bytes(num_images: int, per_class: bool = True, features_dtype: str = "float32") -> int:
    """Peak disk use of :func:`reference_stats` next to ``out``: the float32 features memmap plus the
    final ``.npz`` (mu, sigma and, per class, the features again in ``features_dtype``)."""
    memmap = num_images * FEATURE_DIM * 4 if per_class else 0
    return memmap + ref_file_bytes(num_images if per_class else 0, features_dtype=features_dtype)


def check_reference_space(out: str | os.PathLike, num_images: int, per_class: bool = True,
                          features_dtype: str = "float32") -> None:
    """Refuse, before any Inception work, a reference that will not fit next to ``out``."""
    check_free_space(out, reference_bytes(num_images, per_class, features_dtype),
                     f"reference statistics of {num_images} images (features memmap + .npz) at")


def reference_stats(dataset, inception: InceptionV3, out: str | os.PathLike, batch_size: int = 50,
                    num_workers: int = 0, accelerator=None, features_dtype: str = "float32",
                    per_class: bool = True, source: str = "") -> Path | None:
    """Write the reference ``.npz`` of a dataset yielding ``(uint8 (3, R, R), label)``.

    Global mean/covariance stream in float64; per-class rows go through a temporary memory-mapped
    float32 file next to ``out`` (the whole of ImageNet's 1.28M x 2048 features is 10 GB), then are
    grouped by class into ``out``. The file records the resize protocol and the Inception weights' hash,
    so that ``metrics`` can refuse features made another way. Disk space is checked before the work and
    the memmap's blocks are allocated before the first write (a sparse memmap on a full disk is a SIGBUS,
    not an error); a full disk is a one-line error and leaves no partial file. Returns the path on the
    main process.
    """
    rank, world, main = _rank_world(accelerator)
    n = len(dataset)
    if n < 2:
        raise UserError(f"dataset {source or ''} has {n} image(s); reference statistics need at least 2")
    out = Path(out)
    check_reference_space(out, n, per_class, features_dtype)
    tmp = out.with_name(f".{out.name}.features.tmp.npy")
    feats = None
    try:
        if main and per_class:
            out.parent.mkdir(parents=True, exist_ok=True)
            feats = open_memmap_reserved(tmp, np.float32, (n, FEATURE_DIM))
        batches = shard_batches(n, batch_size, rank, world)
        steps = extract_features(inception, dataset_batches(dataset, batches, num_workers), len(batches), n,
                                 accelerator, desc="inception (reference)")
        stats, labels = FeatureStats(), np.empty(n, np.int64)
        for idx, y, f in steps:
            if main:
                stats.update(f)
                labels[idx] = y
                if feats is not None:
                    feats[idx] = f
        if not main:
            return None
        class_index = None
        if per_class:
            num_classes = max(int(getattr(dataset, "num_classes", 0)), int(labels.max()) + 1)
            groups = class_indices(labels)
            class_index = [groups.get(c, np.empty(0, np.int64)) for c in range(num_classes)]
        protocol = {"resize": inception.resize, "resize_description": resize_description(inception.resize),
                    "weights_sha256": getattr(inception, "weights_sha256", None), "source": source,
                    "features_dtype": features_dtype, "resolution": getattr(dataset, "resolution", None)}
        return save_ref(path=out, stats=stats, features=feats, class_index=class_index,
                        class_names=getattr(dataset, "class_names", None), protocol=protocol,
                        features_dtype=features_dtype)
    finally:
        del feats
        if main:
            tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------
# metrics


def check_reference_protocol(ref: RefStats, resize: str, weights_sha256: str | None = None) -> None:
    """Features of two different pipelines are not comparable: refuse a reference whose features were made
    under another resize protocol or with other Inception weights (one line naming both sides)."""
    if ref.resize is not None and ref.resize != resize:
        made = ("records no protocol (a plain pytorch-fid mu/sigma file: taken as resize 'pytorch-fid', Inception "
                "weights unknown)" if not ref.recorded_protocol else f"was computed with resize {ref.resize!r}")
        raise UserError(f"reference {ref.path} {made}, but this evaluation resizes with {resize!r}; pass --resize "
                        f"{ref.resize} or recompute the reference with `evaluate.py stats --resize {resize}`")
    theirs = ref.weights_sha256
    if theirs and weights_sha256 and theirs != weights_sha256:
        raise UserError(f"reference {ref.path} was computed with Inception weights sha256 {theirs[:12]}..., but "
                        f"these are {weights_sha256[:12]}...; use the same --inception-weights or recompute the "
                        "reference")


def check_same_inception(ref: RefStats, inception: InceptionV3) -> None:
    """:func:`check_reference_protocol` for the features ``inception`` makes."""
    check_reference_protocol(ref, inception.resize, getattr(inception, "weights_sha256", None))


def compute_metrics(features: np.ndarray | None, labels: np.ndarray | None, ref: RefStats, inception: InceptionV3,
                    metrics: tuple[str, ...] = ("fid", "is"), options: MetricOptions | None = None,
                    protocol: dict | None = None, generator: GeneratorSource | None = None) -> dict | None:
    """The ``metrics`` (registry names) of generated ``features`` with ``labels`` given as reference class
    indices. Returns report.json-shaped keys plus ``num_samples``; ``protocol``, when given, receives a
    line per metric on how it was made. With a ``generator`` (metrics that draw their own samples), call
    it on every process: ``features`` is None off the main process, which returns None."""
    main = generator.main if generator is not None else True
    if main:
        if features.shape[1] != ref.dim:
            raise UserError(f"features are {features.shape[1]}-d but the reference {ref.path} is {ref.dim}-d")
        if len(features) < 2:
            raise UserError(f"FID needs at least 2 samples, got {len(features)}")
        check_same_inception(ref, inception)
        if labels is not None:
            check_labels(labels, ref, "samples")
    if any(METRICS[name].needs_labels for name in metrics) and labels is None and main:
        raise UserError("intra-FID needs class labels for the samples")
    inputs = MetricInputs(features=features, labels=labels, ref=ref, inception=inception,
                          options=options or MetricOptions(), generator=generator)
    result = {}
    for name in metrics:
        metric = METRICS[name]
        if main or metric.every_process:
            result.update(metric.compute(inputs))
    if not main:
        return None
    result["num_samples"] = int(len(features))
    if protocol is not None:
        protocol.update(inputs.protocol)
    return result


def generator_source(G: torch.nn.Module, inception: InceptionV3, batch_size: int = 50, seed: int = 0,
                     truncation: float | None = None, accelerator=None, to_ref: np.ndarray | None = None
                     ) -> GeneratorSource:
    """``G`` as a :class:`GeneratorSource` (for metrics that draw their own samples)."""

    def features(classes: list[int], num: int, class_seed: int):
        return generator_features(G, num, inception, batch_size=batch_size, seed=class_seed, classes=classes,
                                  truncation=truncation, accelerator=accelerator, progress=False)

    return GeneratorSource(features, G.num_classes, seed, _rank_world(accelerator)[2], to_ref)
