"""A class-per-folder tree decoded on the fly (no packing step; slower, see benchmarks/data_loading.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from .base import ImageDataset
from .images import ImageDecodeError, list_class_tree, load_image


class FolderDataset(ImageDataset):
    """Images of ``root/<class>/**/<image>``, class k = k-th sorted folder name (ImageFolder's order).

    Each image is decoded with PIL, EXIF-rotated, centre-cropped and resized to ``resolution`` exactly as
    ``sagan-prepare`` packs it. A file that cannot be decoded raises a :class:`UserError` naming it (pack
    the tree with ``sagan-prepare``, which skips and lists such files).
    """

    def __init__(self, root: str | Path, resolution: int, hflip: bool = False, uint8: bool = False, seed: int = 0):
        self.root = Path(root)
        classes, files = list_class_tree(self.root)
        super().__init__(resolution=resolution, class_names=classes, hflip=hflip, uint8=uint8, seed=seed)
        self.files = [f for f, _ in files]
        self._labels = np.array([label for _, label in files], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, index: int) -> tuple[np.ndarray, int]:
        path = self.root / self.files[index]
        try:
            img = load_image(path, self.resolution)
        except ImageDecodeError as e:
            raise UserError(f"{path}: cannot decode image ({e}); remove it, or pack the folder with "
                            f"sagan-prepare, which skips and lists broken files") from None
        return img.transpose(2, 0, 1), int(self._labels[index])

    @property
    def labels(self) -> np.ndarray:
        return self._labels
