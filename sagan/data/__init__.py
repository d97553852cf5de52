"""Datasets: the built-in demo, packed datasets (``sagan-prepare``) and class-per-folder trees.

``open_dataset(path, ...)`` picks the right one; every dataset yields ``(image, label)`` with image a
float tensor 3xRxR in [-1, 1] (or uint8 with ``uint8=True``) and has ``num_classes``, ``resolution``,
``class_names`` and ``set_epoch(epoch)`` (reproducible flips, see :mod:`sagan.data.base`).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .base import ImageDataset, flip_decision
from .demo import DemoDataset
from .folder import FolderDataset
from .images import class_folders
from .packed import MANIFEST, PackedDataset

__all__ = ["DemoDataset", "FolderDataset", "ImageDataset", "PackedDataset", "flip_decision", "open_dataset"]

DEMO_RESOLUTION = 32


def open_dataset(path: str | Path | None, resolution: int | None = None, hflip: bool = False, uint8: bool = False,
                 demo_size: int = 5000, demo_classes: int = 10, seed: int = 0) -> ImageDataset:
    """The dataset at ``path``: a packed folder, a class-per-folder tree, or (``None``) the demo dataset.

    ``resolution`` is required for a tree (images are resized on the fly), checked against a packed
    dataset, and defaults to 32 for the demo. ``seed`` fixes the flips (and the demo images).
    """
    if path is None:
        # demo_classes 0 (an unconditional model): all ten designs, their labels unused
        return DemoDataset(resolution=resolution or DEMO_RESOLUTION, num_classes=demo_classes or 10, size=demo_size,
                           seed=seed, hflip=hflip, uint8=uint8)
    root = Path(path).expanduser()
    if not root.exists():
        raise UserError(f"dataset {str(path)!r} does not exist; give a folder packed by sagan-prepare, a "
                        f"class-per-folder tree, or no path for the demo dataset")
    if not root.is_dir():
        raise UserError(f"dataset {str(path)!r} is a file; give the folder written by sagan-prepare "
                        f"(holding {MANIFEST}) or a class-per-folder tree")
    if (root / MANIFEST).exists() or (root / "images.npy").exists():
        return PackedDataset(root, resolution=resolution, hflip=hflip, uint8=uint8, seed=seed)
    if not class_folders(root):
        raise UserError(f"dataset {root}: neither a packed dataset (no {MANIFEST}) nor a class-per-folder tree "
                        f"(no sub-folders); pack images with sagan-prepare or arrange them as <class>/<image>")
    if resolution is None:
        raise UserError(f"dataset {root}: a class-per-folder tree needs a resolution to resize to "
                        f"(model.resolution), or pack it once with sagan-prepare")
    return FolderDataset(root, resolution=resolution, hflip=hflip, uint8=uint8, seed=seed)
