"""Datasets: every format sagan reads, through one registry (:mod:`sagan.data.formats`).

``open_dataset(path, ...)`` finds the format of ``path`` (a packed folder, a class-per-folder tree, a
flat folder of unlabelled images, torchvision's CIFAR folders, a Hugging Face dataset on disk, or
``None`` for the built-in demo) and opens it; every dataset yields ``(image, label)`` with image a float
tensor 3xRxR in [-1, 1] (or uint8 with ``uint8=True``) and has ``num_classes`` (0 for an unlabelled set,
whose labels are all 0), ``resolution``, ``class_names`` and ``set_epoch(epoch)`` (reproducible flips,
see :mod:`sagan.data.base`). The packer is :mod:`sagan.data.prepare` (``sagan-prepare``).
"""

from __future__ import annotations

from pathlib import Path

from .base import ImageDataset, flip_decision
from .demo import DemoDataset
from .formats import DatasetFormat, FormatOptions, OpenRequest, find_format, register_format, registered_formats
from .formats.source import Source, SourceDataset, open_source_dataset
from .formats.tree import FolderDataset
from .formats.packed import PackedDataset

__all__ = ["DatasetFormat", "DemoDataset", "FolderDataset", "FormatOptions", "ImageDataset", "PackedDataset",
           "Source", "SourceDataset", "find_format", "flip_decision", "open_dataset", "register_format",
           "registered_formats"]


def open_dataset(path: str | Path | None, resolution: int | None = None, hflip: bool = False, uint8: bool = False,
                 demo_size: int = 5000, demo_classes: int = 10, seed: int = 0, split: str | None = None,
                 labels: str | None = None) -> ImageDataset:
    """The dataset at ``path`` in whichever registered format it is, or (``None``) the demo dataset.

    ``resolution`` is checked against a packed dataset, required for image folders (images are resized
    on the fly), and defaults to the stored size for CIFAR (32) and to 32 for the demo. ``split`` /
    ``labels`` choose within a CIFAR or Hugging Face folder (default: train, fine / the ClassLabel
    column). ``seed`` fixes the flips (and the demo images).
    """
    fmt, root = find_format(path)
    options = FormatOptions(split=split, labels=labels)
    fmt.check_options(options, f"dataset {path}")
    request = OpenRequest(resolution=resolution, hflip=hflip, uint8=uint8, seed=seed, demo_size=demo_size,
                          demo_classes=demo_classes, options=options)
    if fmt.open is not None:
        return fmt.open(root, request)
    return open_source_dataset(fmt, root, request)
