"""intra-FID (Miyato & Koyama 2018): the mean over classes of FID(generated class c, real class c).

Per class, the generated rows of that class against all real rows of that class (the reference's
class-grouped features), exactly and without d x d matrices (:class:`frechet.ClassFrechetDistance`).
Labels here are reference class indices: generated labels are mapped first (:mod:`classes`).
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from ..errors import UserError
from ..io import progress_disable
from .frechet import ClassFrechetDistance, class_indices
from .stats import RefStats


def check_labels(labels: np.ndarray, ref: RefStats, where: str) -> None:
    if len(labels) and labels.min() < 0:
        raise UserError(f"{where}: negative class label {int(labels.min())}; labels must be class indices >= 0")
    if ref.has_classes and len(labels) and labels.max() >= ref.num_classes:
        raise UserError(f"{where}: class label {int(labels.max())} but the reference {ref.path} has "
                        f"{ref.num_classes} classes; use the reference of the dataset the model was trained on")


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
