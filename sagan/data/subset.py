"""Training on part of a dataset (``data.subset``): a deterministic fraction or count of every class.

``data.subset: 0.1`` keeps round(10%) of the images of every class (at least one), ``data.subset: 500``
keeps 500 images per class (all of a class that has fewer), so "10% of CIFAR-10" (5,000 images, 500 per
class, as in the DiffAugment paper's small-data runs) is one config line. Which images: for class ``c``,
a permutation of its images seeded by ``(data.subset_seed, c)``, of which the first ones are taken. The
choice depends only on the labels, the value and the seed, so it is the same on every resume, every
process and every loader worker; a smaller fraction takes a prefix of a larger one's images.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset


def dataset_labels(dataset) -> np.ndarray:
    """The label of every image, in dataset order (the datasets' ``labels``, else read item by item)."""
    labels = getattr(dataset, "labels", None)
    if labels is None:
        labels = [int(dataset[i][1]) for i in range(len(dataset))]
    return np.asarray(labels, dtype=np.int64)


def subset_indices(labels: np.ndarray, subset: float, seed: int = 0) -> np.ndarray:
    """Sorted indices of the images ``subset`` keeps: a fraction (0 < subset < 1) of every class, rounded
    half up, at least one image; or ``int(subset)`` images per class."""
    keep = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = max(1, math.floor(subset * len(members) + 0.5)) if subset < 1 else min(int(subset), len(members))
        order = np.random.default_rng([int(seed), int(c)]).permutation(len(members))
        keep.append(members[order[:k]])
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)


def describe_subset(subset: float) -> str:
    return f"{subset:.0%} of each class" if subset < 1 else f"{int(subset)} images per class"


class SubsetDataset(Dataset):
    """The images ``indices`` of ``base`` (any sagan dataset), with its attributes: flips and epochs are
    the base's (an image keeps the flips it has in the full dataset)."""

    def __init__(self, base, indices: np.ndarray, note: str = ""):
        self.base, self.indices, self.note = base, np.asarray(indices, dtype=np.int64), note
        for k in ("resolution", "class_names", "num_classes", "hflip", "uint8", "seed"):
            setattr(self, k, getattr(base, k))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= int(index) < len(self):
            raise IndexError(f"index {index} out of range for a subset of {len(self)} images")
        return self.base[int(self.indices[int(index)])]

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return self.base.epoch

    @property
    def labels(self) -> np.ndarray:
        return dataset_labels(self.base)[self.indices]

    def __repr__(self) -> str:
        return f"SubsetDataset({len(self)} of {self.base!r})"


def apply_subset(dataset, subset: float | None, seed: int = 0):
    """``dataset`` itself (``subset`` None), or the :class:`SubsetDataset` of ``data.subset`` with a note
    for the start-up lines."""
    if subset is None:
        return dataset
    labels = dataset_labels(dataset)
    indices = subset_indices(labels, subset, seed)
    classes = len(np.unique(labels))
    note = (f"data.subset={subset:g}: training on {len(indices)} of {len(labels)} images ({describe_subset(subset)}, "
            f"{classes} classes, subset seed {seed})")
    return SubsetDataset(dataset, indices, note)
