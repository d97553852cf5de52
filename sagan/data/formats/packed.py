"""The packed format written by ``sagan-prepare`` (:mod:`sagan.data.packed`), read through memory maps."""

from __future__ import annotations

from pathlib import Path

from ..packed import IMAGES, MANIFEST, PackedDataset
from . import DatasetFormat, OpenRequest, register_format


def detect(root: Path) -> bool:
    return (root / MANIFEST).exists() or (root / IMAGES).exists()  # an incomplete one is reported by open


def open_packed(root: Path, request: OpenRequest) -> PackedDataset:
    return PackedDataset(root, resolution=request.resolution, hflip=request.hflip, uint8=request.uint8,
                         seed=request.seed)


register_format(DatasetFormat("packed", f"a dataset packed by sagan-prepare ({MANIFEST})", detect,
                              open=open_packed, priority=100, sized=True))
