"""Datasets: every format sagan reads, through one registry (:mod:`sagan.data.formats`).

``open_dataset(path, ...)`` finds the format of ``path`` (a packed folder, a class-per-folder tree, a
flat folder of unlabelled images, torchvision's CIFAR folders, a Hugging Face dataset on disk, or
``None`` for the built-in demo) and opens it; ``dataset_from_config(cfg)`` opens the dataset a config
names (the one way training, experiments and the demo reference read a config's data). Every dataset
yields ``(image, label)`` with image a float tensor 3xRxR in [-1, 1] (or uint8 with ``uint8=True``) and
has ``num_classes`` (0 for an unlabelled set, whose labels are all 0), ``resolution``, ``class_names`` and
``set_epoch(epoch)`` (reproducible flips, see :mod:`sagan.data.base`). The packer is
:mod:`sagan.data.prepare` (``sagan-prepare``).
"""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from .base import ImageDataset, flip_decision
from .demo import DemoDataset
from .formats import DatasetFormat, FormatOptions, OpenRequest, find_format, register_format, registered_formats
from .formats.source import Source, SourceDataset, open_source_dataset
from .formats.tree import FolderDataset
from .formats.packed import PackedDataset

__all__ = ["DatasetFormat", "DemoDataset", "FolderDataset", "FormatOptions", "ImageDataset", "PackedDataset",
           "Source", "SourceDataset", "dataset_from_config", "find_format", "flip_decision", "open_dataset",
           "open_found", "register_format", "registered_formats"]


def open_dataset(path: str | Path | None, resolution: int | None = None, hflip: bool = False, uint8: bool = False,
                 demo_size: int = 5000, demo_classes: int = 10, seed: int = 0, split: str | None = None,
                 labels: str | None = None) -> ImageDataset:
    """The dataset at ``path`` in whichever registered format it is, or (``None``) the demo dataset.

    ``resolution`` is checked against a packed dataset, required for image folders (images are resized
    on the fly), and defaults to the stored size for CIFAR (32) and to 32 for the demo. ``split`` /
    ``labels`` choose within a CIFAR or Hugging Face folder (default: train, fine / the ClassLabel
    column). ``seed`` fixes the flips (and the demo images).
    """
    request = OpenRequest(resolution=resolution, hflip=hflip, uint8=uint8, seed=seed, demo_size=demo_size,
                          demo_classes=demo_classes, options=FormatOptions(split=split, labels=labels))
    return open_found(find_format(path), request, path)


def open_found(found: tuple[DatasetFormat, Path | None], request: OpenRequest,
               path: str | Path | None = None) -> ImageDataset:
    """The dataset of a format already found (``find_format(path)``: the format and its folder), as
    ``request`` asks; the format is not detected again. ``path``: as the user wrote it, for messages."""
    fmt, root = found
    fmt.check_options(request.options, f"dataset {path if path is not None else root}")
    if fmt.open is not None:
        return fmt.open(root, request)
    return open_source_dataset(fmt, root, request)


FROM_CONFIG = ...  # dataset_from_config's default resolution: the config's model.resolution


def dataset_from_config(cfg: Config, *, resolution: int | None = FROM_CONFIG, hflip: bool | None = None,
                        uint8: bool = False, found: tuple[DatasetFormat, Path | None] | None = None) -> ImageDataset:
    """The dataset a config names (``data.path``, ``None``: the demo of ``data.demo_size`` images and
    ``model.num_classes`` classes), with its ``data.split`` / ``data.labels``, flips seeded by
    ``train.seed``: what training, experiments' references and ``evaluate.py stats --data demo`` read.

    ``resolution``: default the config's ``model.resolution``; ``None`` asks for the stored size (packed,
    CIFAR). ``hflip``: default ``data.hflip``. ``found``: ``find_format(data.path)`` when the caller has
    already detected the format (it is detected once per open)."""
    m, d = cfg.model, cfg.data
    request = OpenRequest(resolution=m.resolution if resolution is FROM_CONFIG else resolution,
                          hflip=d.hflip if hflip is None else hflip, uint8=uint8, seed=cfg.train.seed,
                          demo_size=d.demo_size, demo_classes=m.num_classes,
                          options=FormatOptions(split=d.split, labels=d.labels))
    return open_found(found if found is not None else find_format(d.path), request, d.path)
