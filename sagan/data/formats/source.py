"""What a dataset format lists: a :class:`Source` (images, labels, class names, a reader), and the dataset
that decodes one on the fly (:class:`SourceDataset`, e.g. training straight from a CIFAR folder).

The packer (``sagan.data.prepare``) and :class:`SourceDataset` both call ``reader.load(item, R)``, so a
packed dataset and the folder it came from give the same pixels.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from ...errors import UserError
from ..base import ImageDataset
from ..images import ImageDecodeError, image_side, load_image, resize_square


class Reader(Protocol):
    """Decodes the images of one source; picklable (it travels to decoding workers) and cheap to pickle
    (open files and tables lazily, in the process that reads)."""

    def load(self, item, resolution: int) -> np.ndarray:
        """Image ``item`` as uint8 (R, R, 3) RGB, centre-cropped and resized; :class:`ImageDecodeError` if
        it cannot be decoded."""

    def name(self, item) -> str:
        """The item for a message (a file path, ``data_batch_3[17]``)."""

    def side(self, item) -> int | None:
        """The shorter side of image ``item`` from its header (no decoding), None if it does not open."""


@dataclass
class Source:
    """The images of one dataset folder, in order.

    ``classes``: class names, class k = ``classes[k]`` (empty for an unlabelled set: every label 0);
    ``items``: one picklable entry per image for ``reader``; ``labels``: int64, one per item;
    ``skipped``: ``(name, reason)`` of what was not listed; ``resolution``: the stored square size when
    every image has it (CIFAR: 32), else None; ``parallel``: decoding is worth worker processes (files
    to decode, not arrays in memory); ``fingerprint``: what identifies the listing (an interrupted pack
    resumes only onto the same one), computed when first read (only the packer reads it) by
    ``fingerprint_of`` (picklable: a dataset holding this source may go to loader workers), by default the
    digest of the items and labels.
    """

    what: str
    classes: list[str]
    items: Sequence
    labels: np.ndarray
    reader: Reader
    skipped: list[tuple[str, str]] = field(default_factory=list)
    resolution: int | None = None
    parallel: bool = True
    fingerprint_of: Callable[[], str] | None = None

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.labels) != len(self.items):
            raise ValueError(f"{len(self.items)} items but {len(self.labels)} labels")

    @functools.cached_property
    def fingerprint(self) -> str:
        return self.fingerprint_of() if self.fingerprint_of else listing_digest(self.items, self.labels)


def listing_digest(items: Sequence, labels: Sequence[int], prefix: str = "") -> str:
    """SHA-256 of ``label<TAB>item`` lines (file names as the file system spells them)."""
    h = hashlib.sha256(prefix.encode())
    for item, label in zip(items, labels):
        h.update(f"{int(label)}\t{item}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def path_inside(root: Path, listed: str, base: Path | None = None) -> Path | None:
    """The file a dataset's own listing names (``listed``, relative to ``base``, by default ``root``) with
    every symlink and ``..`` resolved, as a path relative to ``root``; None when it lies outside ``root``
    (``../../x.png``, ``/abs/x.png``, a link that points out). Callers check and read ``root / result``:
    the same path for both."""
    real_root = Path(root).resolve()
    try:
        return Path((Path(base or root) / listed).resolve()).relative_to(real_root)
    except (ValueError, OSError, RuntimeError):  # outside root; a NUL byte or a symlink loop in the name
        return None


def array_digest(what: str, images: np.ndarray, labels: np.ndarray) -> str:
    """The pixels and labels themselves (a source held in memory): what the packer's resume check compares."""
    digest = hashlib.sha256(np.ascontiguousarray(images).data)
    digest.update(np.ascontiguousarray(labels).tobytes())
    return f"{what}: sha256 {digest.hexdigest()}"


class FileReader:
    """Image files under ``root``; items are paths relative to it."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def load(self, item: str, resolution: int) -> np.ndarray:
        return load_image(self.root / item, resolution)

    def name(self, item: str) -> str:
        return str(self.root / item)

    def side(self, item: str) -> int | None:
        return image_side(self.root / item)


class ArrayReader:
    """Images held in memory as uint8 (N, H, W, 3); items are indices. ``names``: what each block of rows
    came from, as ``(first index, file name)`` in order, for messages."""

    def __init__(self, images: np.ndarray, names: Sequence[tuple[int, str]] = ()):
        self.images, self.names = images, list(names)

    def load(self, item: int, resolution: int) -> np.ndarray:
        img = self.images[item]
        return img if img.shape[0] == img.shape[1] == resolution else resize_square(img, resolution)

    def side(self, item: int) -> int | None:
        return min(self.images.shape[1:3])

    def name(self, item: int) -> str:
        start, file = max(((s, f) for s, f in self.names if s <= item), default=(0, "image"))
        return f"{file}[{item - start}]"


class SourceDataset(ImageDataset):
    """A :class:`Source` decoded on the fly at ``resolution`` (slower than a packed copy for files)."""

    def __init__(self, source: Source, resolution: int, hflip: bool = False, uint8: bool = False, seed: int = 0):
        super().__init__(resolution=resolution, class_names=source.classes, hflip=hflip, uint8=uint8, seed=seed)
        self.source = source

    def __len__(self) -> int:
        return len(self.source.items)

    def _load(self, index: int) -> tuple[np.ndarray, int]:
        item = self.source.items[index]
        try:
            img = self.source.reader.load(item, self.resolution)
        except ImageDecodeError as e:
            raise UserError(f"{self.source.reader.name(item)}: cannot decode image ({e}); remove it, or pack the "
                            f"folder with sagan-prepare, which skips and lists broken files") from None
        return img.transpose(2, 0, 1), int(self.source.labels[index])

    @property
    def labels(self) -> np.ndarray:
        return self.source.labels


def open_source_dataset(fmt, root: Path, request, dataset=SourceDataset) -> SourceDataset:
    """The generic ``open`` of a format: its source decoded on the fly, at the stored size by default
    (``dataset``: the class, called like :class:`SourceDataset`)."""
    source = fmt.open_source(root, request.options)
    resolution = request.resolution or source.resolution
    if resolution is None:
        raise UserError(f"dataset {root}: {fmt.describe} needs a resolution to resize to (model.resolution), "
                        f"or pack it once with sagan-prepare")
    return dataset(source, resolution, hflip=request.hflip, uint8=request.uint8, seed=request.seed)
