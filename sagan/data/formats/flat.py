"""A flat folder of images with no class sub-folders: an unlabelled set (``num_classes`` 0, every label 0)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from ...errors import UserError
from ...io import printable
from ..images import class_folders, loose_images
from . import DatasetFormat, FormatOptions, register_format
from .source import FileReader, Source, listing_digest


def detect(root: Path) -> bool:
    return bool(loose_images(root)) and not class_folders(root)


def flat_source(root: Path, options: FormatOptions = FormatOptions()) -> Source:
    files = loose_images(root)
    if not files:
        raise UserError(f"{printable(root)}: no image files in it; check the path")
    labels = [0] * len(files)
    return Source("flat folder of unlabelled images", [], files, labels, FileReader(root),
                  fingerprint_of=partial(listing_digest, files, labels, prefix="flat\n"))


register_format(DatasetFormat("flat", "a flat folder of images without class folders (unlabelled)", detect,
                              source=flat_source, priority=10))
