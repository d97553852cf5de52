"""Dataset formats: one module each plus one registration, consulted by ``open_dataset`` and ``sagan-prepare``.

A format is a :class:`DatasetFormat`. ``detect(root)`` says from a few names whether a folder is in that
format; ``source(root, options)`` lists its images as a :class:`~sagan.data.formats.source.Source` (what
the packer packs and what an unpacked folder is trained from); ``open`` replaces the generic on-the-fly
dataset where a format has its own (a packed folder is memory-mapped, the demo is generated). When
several formats detect one folder the highest ``priority`` wins: a marker file (``manifest.json``,
``batches.meta``, ``dataset_info.json``) says more than the generic tree and flat layouts.

Adding a format: write ``sagan/data/formats/<name>.py`` with its ``detect`` and ``source`` functions,
end it with ``register_format(DatasetFormat(...))``, and add ``<name>`` to ``BUILTIN`` below (a format of
your own: the same call from a plugin module, :mod:`sagan.plugins`). Nothing else changes: ``open_dataset``, ``--data`` and ``sagan-prepare --source`` find it through the registry.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

from ...errors import UserError
from ...io import printable
from ...registry import DATASET_FORMATS

__all__ = ["BUILTIN", "DATASET_FORMATS", "DatasetFormat", "FormatOptions", "OpenRequest", "find_format", "get_format",
           "register_format", "registered_formats"]


@dataclass(frozen=True)
class FormatOptions:
    """Choices within a dataset folder; ``None`` = the format's default. A format lists the ones it reads
    in ``DatasetFormat.options``; giving another is an error, not silently ignored."""

    split: str | None = None  # train | test (CIFAR, Hugging Face); default train
    labels: str | None = None  # CIFAR-100: fine | coarse (default fine); Hugging Face: the ClassLabel column

    def given(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class OpenRequest:
    """What ``open_dataset`` was asked for, handed to a format's ``open``."""

    resolution: int | None = None
    hflip: bool = False
    uint8: bool = False
    seed: int = 0
    demo_size: int = 5000
    demo_classes: int = 10
    options: FormatOptions = FormatOptions()


@dataclass(frozen=True)
class DatasetFormat:
    """One dataset format (see the module docstring).

    ``describe``: what such a folder is, for help texts and the "none of these formats" error;
    ``sized``: its images have one stored size, which the data then gives as ``model.resolution``
    (packed, CIFAR); other formats are resized to the configured resolution.
    """

    name: str
    describe: str
    detect: Callable[[Path], bool]
    source: Callable | None = None  # (root, FormatOptions) -> Source
    open: Callable | None = None  # (root | None, OpenRequest) -> ImageDataset; default: a SourceDataset
    priority: int = 0
    options: tuple[str, ...] = ()
    sized: bool = False

    def check_options(self, options: FormatOptions, where: str) -> None:
        extra = [k for k in options.given() if k not in self.options]
        if extra:
            raise UserError(f"{where}: --{extra[0]} does not apply to {self.describe}; drop it (it is read from "
                            f"{', '.join(f.describe for f in registered_formats() if extra[0] in f.options)})")

    def open_source(self, root: Path, options: FormatOptions):
        if self.source is None:
            raise UserError(f"{printable(root)} is {self.describe}, which sagan-prepare does not read; "
                            f"it is used as it is (--data)")
        self.check_options(options, printable(root))
        return self.source(root, options)


# DATASET_FORMATS (sagan.registry.DATASET_FORMATS) is filled by the BUILTIN modules below
BUILTIN = ("packed", "demo", "cifar", "tiny_imagenet", "huggingface", "tree", "flat", "mnist")


def register_format(fmt: DatasetFormat) -> DatasetFormat:
    return DATASET_FORMATS.register(fmt.name, fmt)


def registered_formats() -> list[DatasetFormat]:
    """Every registered format, most specific first."""
    return sorted(DATASET_FORMATS.values(), key=lambda f: -f.priority)


def get_format(name: str) -> DatasetFormat:
    return DATASET_FORMATS[name]


def find_format(path: str | Path | None) -> tuple[DatasetFormat, Path | None]:
    """The format of the dataset at ``path`` (``None``: the built-in demo) and the folder, or a one-line
    :class:`UserError` saying what was found instead."""
    if path is None:
        return get_format("demo"), None
    root = Path(path).expanduser()
    kinds = "; ".join(f.describe for f in registered_formats() if f.source is not None or f.name == "packed")
    if not root.exists():
        raise UserError(f"dataset {printable(path)} does not exist; give a folder holding one of: {kinds} "
                        f"(or no path for the demo dataset)")
    if not root.is_dir():
        raise UserError(f"dataset {printable(path)} is a file; give the folder that holds it (one of: {kinds})")
    found = [f for f in registered_formats() if f.detect(root)]
    if not found:
        raise UserError(f"dataset {printable(root)} is none of the formats sagan reads: {kinds}; point at such a "
                        f"folder (e.g. cifar-10-batches-py itself, not the folder around it)")
    best = [f for f in found if f.priority == found[0].priority]
    if len(best) > 1:
        raise UserError(f"dataset {printable(root)} looks like both {best[0].describe} and {best[1].describe}; "
                        f"keep one dataset per folder")
    return best[0], root


for _name in BUILTIN:
    importlib.import_module(f"{__name__}.{_name}")
