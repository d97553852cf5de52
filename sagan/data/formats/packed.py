"""The packed dataset format written by ``sagan-prepare``: its files, the writer's helpers, the dataset that
reads it (through memory maps) and its registration as the dataset format ``packed``.

A packed dataset is a folder holding

- ``images.npy``: uint8 (N, R, R, 3) RGB, a plain ``.npy`` file read through a memory map (no
  compression: BigGAN-PyTorch measured 102 vs 8 batches/s against LZF-compressed HDF5);
- ``labels.npy``: int64 (N,), the class index of each slot, ``-1`` for a slot whose source file could
  not be decoded (slots are preallocated before decoding, so a skipped file leaves a zero-filled hole
  rather than forcing a rewrite of everything after it);
- ``skipped.txt``: what was not packed, one ``path<TAB>reason`` per line (UTF-8): the files that could
  not be decoded, then the folders and files listed once already (symlink loops, links to something
  listed before; see :func:`sagan.data.images.scan_class_tree`);
- ``manifest.json``: source (its path, ``source_format`` and ``source_kind``, ``split`` / ``labels``
  where chosen), resolution, class names (index -> name: sorted folder names for a tree, like
  ImageFolder; the dataset's own names for CIFAR and Hugging Face; none for an unlabelled set, whose
  labels are all 0), counts (``num_skipped``: the lines of ``skipped.txt``) and checksum. It is written last (temp file +
  ``os.replace``), so a folder with a manifest is complete and one without is not.

Names are written as text through :func:`sagan.io.printable`: a byte of a file or folder name
that is not UTF-8 appears as ``\\xNN`` (a folder ``caf\\xff``), as do control characters, so every
tool downstream can print them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ...errors import UserError
from ...io import open_memmap_reserved, reserve_space
from ..base import ImageDataset
from . import DatasetFormat, OpenRequest, register_format

FORMAT = "sagan-packed-v1"
IMAGES, LABELS, MANIFEST, SKIPPED, PROGRESS = "images.npy", "labels.npy", "manifest.json", "skipped.txt", "progress.jsonl"


def _layout(num_slots: int, resolution: int) -> dict[str, tuple[type, tuple[int, ...]]]:
    return {IMAGES: (np.uint8, (num_slots, resolution, resolution, 3)), LABELS: (np.int64, (num_slots,))}


def create_arrays(root: Path, num_slots: int, resolution: int) -> None:
    """New zero-filled arrays with every disk block allocated: a full disk fails here, in seconds, rather
    than as a SIGBUS when a write through a memory map finds no block hours later. Nothing is left on
    failure."""
    try:
        for name, (dtype, shape) in _layout(num_slots, resolution).items():
            open_memmap_reserved(root / name, dtype, shape)
    except BaseException:
        for name in (IMAGES, LABELS):
            (root / name).unlink(missing_ok=True)
        raise


def reopen_arrays(root: Path, num_slots: int, resolution: int) -> bool:
    """Whether the arrays of an interrupted run are there with the expected shapes; if so their disk
    blocks are allocated (a no-op for arrays from :func:`create_arrays`, not for sparse older ones)."""
    for name, (dtype, shape) in _layout(num_slots, resolution).items():
        try:
            array = np.load(root / name, mmap_mode="r")
        except (OSError, ValueError):
            return False
        if (array.dtype, array.shape) != (dtype, shape):
            return False
    for name in (IMAGES, LABELS):
        fd = os.open(root / name, os.O_RDWR)
        try:
            reserve_space(fd, os.fstat(fd).st_size, root / name)
        finally:
            os.close(fd)
    return True


class SlotWriter:
    """Writes slots of the arrays in place with ``pwrite``: a full disk is an ENOSPC error there (copy-on-
    write file systems need new blocks even for allocated ranges), never the SIGBUS of a memory map."""

    def __init__(self, root: Path):
        self._files = {}  # name -> (file descriptor, where the data starts after the .npy header)
        for name in (IMAGES, LABELS):
            offset = np.load(root / name, mmap_mode="r").offset
            self._files[name] = (os.open(root / name, os.O_RDWR), offset)

    def write(self, start: int, images: np.ndarray, labels: np.ndarray) -> None:
        """Slots ``start..`` get ``images`` and ``labels``, on disk (fdatasync) when this returns."""
        for name, data in ((IMAGES, images), (LABELS, labels)):
            fd, offset = self._files[name]
            buf = memoryview(np.ascontiguousarray(data)).cast("B")
            pos = offset + start * (data.nbytes // len(data))
            while buf:
                written = os.pwrite(fd, buf, pos)
                buf, pos = buf[written:], pos + written
        for fd, _ in self._files.values():
            os.fdatasync(fd)

    def close(self) -> None:
        for fd, _ in self._files.values():
            os.close(fd)
        self._files = {}


def read_manifest(root: Path) -> dict:
    """The manifest of a complete packed dataset at ``root``, or a :class:`UserError`."""
    path = root / MANIFEST
    if not path.is_file():
        if (root / IMAGES).exists() or (root / PROGRESS).exists():
            raise UserError(f"{root}: incomplete packed dataset (no {MANIFEST}); re-run sagan-prepare with the "
                            f"same --source and --out to finish it")
        raise UserError(f"{root}: not a packed dataset (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: unreadable manifest ({e}); re-run sagan-prepare") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{path}: not a {FORMAT} manifest; re-pack the images with sagan-prepare")
    return manifest


class PackedDataset(ImageDataset):
    """A folder written by ``sagan-prepare``, read through memory maps.

    The arrays are opened lazily on first access in each process and left out of the pickled state,
    so DataLoader workers and accelerate ranks share the page cache instead of copying the data.
    """

    def __init__(self, root: str | Path, resolution: int | None = None, hflip: bool = False,
                 uint8: bool = False, seed: int = 0):
        self.root = Path(root)
        manifest = read_manifest(self.root)
        if resolution is not None and int(resolution) != manifest["resolution"]:
            raise UserError(f"{self.root}: packed at {manifest['resolution']}px but {resolution}px was asked for; "
                            f"pack again with --resolution {resolution} or set the resolution to {manifest['resolution']}")
        super().__init__(resolution=manifest["resolution"], class_names=manifest["classes"],
                         hflip=hflip, uint8=uint8, seed=seed)
        self.manifest = manifest
        self._size = int(manifest["num_images"])
        self._images: np.ndarray | None = None
        self._labels: np.ndarray | None = None
        self._slots: np.ndarray | None = None  # dataset index -> slot; None when no file was skipped

    def __len__(self) -> int:
        return self._size

    def _open(self) -> None:
        try:
            images = np.load(self.root / IMAGES, mmap_mode="r")
            labels = np.load(self.root / LABELS, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise UserError(f"{self.root}: cannot read the packed arrays ({e}); re-run sagan-prepare") from None
        r = self.resolution
        if images.shape[1:] != (r, r, 3) or images.shape[0] != labels.shape[0]:
            raise UserError(f"{self.root}: {IMAGES} {images.shape} / {LABELS} {labels.shape} do not match the "
                            f"manifest ({r}px); re-run sagan-prepare")
        if self._size != labels.shape[0]:
            self._slots = np.flatnonzero(np.asarray(labels) >= 0)
            if len(self._slots) != self._size:
                raise UserError(f"{self.root}: {len(self._slots)} labelled images but the manifest says "
                                f"{self._size}; re-run sagan-prepare")
        self._images, self._labels = images, labels

    def _load(self, index: int) -> tuple[np.ndarray, int]:
        if self._images is None:
            self._open()
        slot = index if self._slots is None else int(self._slots[index])
        return self._images[slot].transpose(2, 0, 1), int(self._labels[slot])

    @property
    def labels(self) -> np.ndarray:
        """Label of every image, in dataset order (e.g. for per-class statistics)."""
        labels = np.load(self.root / LABELS, mmap_mode="r")
        return np.asarray(labels[labels >= 0]) if self._size != len(labels) else np.asarray(labels)

    def __getstate__(self):
        state = super().__getstate__()
        state["_images"] = state["_labels"] = state["_slots"] = None
        return state


# --------------------------------------------------------------------------------------------------
# the registration (sagan.data.formats)


def detect(root: Path) -> bool:
    return (root / MANIFEST).exists() or (root / IMAGES).exists()  # an incomplete one is reported by open


def open_packed(root: Path, request: OpenRequest) -> PackedDataset:
    return PackedDataset(root, resolution=request.resolution, hflip=request.hflip, uint8=request.uint8,
                         seed=request.seed)


register_format(DatasetFormat("packed", f"a dataset packed by sagan-prepare ({MANIFEST})", detect,
                              open=open_packed, priority=100, sized=True))
