"""intra-FID (Miyato & Koyama 2018): the mean over classes of FID(generated class c, real class c).

Per class, the generated rows of that class against all real rows of that class (the reference's
class-grouped features), exactly and without d x d matrices (:class:`frechet.ClassFrechetDistance`).
Labels here are reference class indices: generated labels are mapped first (:mod:`sagan.metrics.classes`).

Two protocols (``MetricOptions.intra_fid_protocol``) say which generated images enter:

- ``balanced``: the class-balanced evaluation samples themselves (50 per class for 50k ImageNet samples);
- ``projection``: ``per_class_samples`` images generated per class (5000 in the projection-discriminator
  paper), one class at a time, so only one class's features are in memory; needs the generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from ..errors import UserError
from ..io import progress_disable
from .frechet import ClassFrechetDistance, class_indices
from .stats import RefStats, informative_names


def check_labels(labels: np.ndarray, ref: RefStats, where: str) -> None:
    if len(labels) and labels.min() < 0:
        raise UserError(f"{where}: negative class label {int(labels.min())}; labels must be class indices >= 0")
    if ref.has_classes and len(labels) and labels.max() >= ref.num_classes:
        unlabelled = ref.num_classes == 1 and informative_names(ref.class_names) is None
        held = ("is unlabelled (its images have no classes)" if unlabelled else
                f"has {ref.num_classes} class{'es' if ref.num_classes != 1 else ''}")
        raise UserError(f"{where}: class label {int(labels.max())} but the reference {ref.path} {held}; use the "
                        "reference of the dataset the model was trained on")


def _too_few(c: int, n: int, ref: RefStats | None = None) -> UserError:
    if ref is None:
        return UserError(f"class {c} has {n} generated image(s); intra-FID needs at least 2 per class: use more "
                         "samples (50 per class is the paper's 50k on ImageNet) or --no-intra-fid")
    return UserError(f"class {c} has {n} real image(s) in {ref.path}; intra-FID needs at least 2 per class, "
                     "or pass --no-intra-fid")


def check_intra_fid_inputs(labels: np.ndarray, ref: RefStats) -> None:
    """Fail before any feature extraction when some class cannot get a covariance (< 2 images a side)."""
    counts = np.bincount(labels)
    for c in np.flatnonzero(counts):
        if counts[c] < 2:
            raise _too_few(int(c), int(counts[c]))
        if ref.class_count(int(c)) < 2:
            raise _too_few(int(c), ref.class_count(int(c)), ref)


def class_fid(gen_features: np.ndarray, ref: RefStats, c: int, distance: ClassFrechetDistance) -> float:
    if len(gen_features) < 2:
        raise _too_few(c, len(gen_features))
    if ref.class_count(c) < 2:
        raise _too_few(c, ref.class_count(c), ref)
    return distance(gen_features, ref.class_features(c))


PROTOCOLS = ("balanced", "projection")
# the name the balanced protocol had before it was named for what it does; still accepted
FORMER_NAMES = {"mission": "balanced"}


@dataclass(frozen=True)
class GeneratorSource:
    """More samples of the generator under evaluation, for metrics that draw their own (every process
    calls ``features`` together; it returns ``(features, labels)`` on the main process, None elsewhere)."""

    features: Callable[[list[int], int, int], tuple[np.ndarray, np.ndarray] | None]  # (classes, num, seed)
    num_classes: int
    seed: int
    main: bool = True
    to_ref: np.ndarray | None = None  # generated class -> reference class (None: the same index)


def projection_intra_fid(gen: GeneratorSource, ref: RefStats, per_class: int, device="cpu",
                         progress: bool = True) -> tuple[float, dict[int, float]] | None:
    """The projection-discriminator paper's intra-FID: ``per_class`` generated images of each class
    (class c drawn from seed + 1 + c) against all real images of that class, one class at a time."""
    if not ref.has_classes:
        raise UserError(f"reference {ref.path} has no per-class features; rebuild it with `evaluate.py stats`")
    scores, distance = {}, ClassFrechetDistance(device)
    classes = range(gen.num_classes) if gen.to_ref is not None else range(min(gen.num_classes, ref.num_classes))
    for c in tqdm(classes, desc="intra-FID (projection protocol)", unit="class",
                  disable=progress_disable(progress and gen.main), dynamic_ncols=True):
        got = gen.features([c], per_class, gen.seed + 1 + c)
        if gen.main:
            r = int(gen.to_ref[c]) if gen.to_ref is not None else c
            scores[r] = class_fid(got[0], ref, r, distance)
    return (float(np.mean(list(scores.values()))), scores) if gen.main else None


def protocol_line(protocol: str, per_class_samples: int, labels: np.ndarray | None, seed: int) -> dict:
    """The report's description of how intra-FID was computed."""
    if protocol == "projection":
        generated = f"{per_class_samples} generated per class (class c from seed {seed} + 1 + c)"
    else:
        counts = np.bincount(labels)
        generated = f"the {len(labels)} class-balanced samples ({counts[counts > 0].min()}-{counts.max()} per class)"
    return {"name": protocol, "generated": generated, "real": "all reference images of the class"}


def intra_fid_of(features: np.ndarray, labels: np.ndarray, ref: RefStats, device="cpu",
                 progress: bool = True) -> tuple[float, dict[int, float]]:
    """Mean over the generated classes of FID(generated class c, real class c) and the per-class FIDs."""
    if not ref.has_classes:
        raise UserError(f"reference {ref.path} has no per-class features (a pytorch-fid mu/sigma file?); "
                        "rebuild it with `evaluate.py stats` or pass --no-intra-fid")
    check_labels(labels, ref, "samples")
    per_class, distance = {}, ClassFrechetDistance(device)
    for c, idx in tqdm(class_indices(labels).items(), desc="intra-FID", unit="class", disable=progress_disable(progress),
                       dynamic_ncols=True):
        per_class[c] = class_fid(features[idx], ref, c, distance)
    return float(np.mean(list(per_class.values()))), per_class
