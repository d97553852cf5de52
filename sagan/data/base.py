"""What every sagan dataset shares: the item format and the reproducible horizontal flip.

Items are ``(image, label)``: image a float32 tensor 3xRxR in [-1, 1] (``x / 127.5 - 1``), or the
uint8 tensor 3xRxR with ``uint8=True`` (for FID reference statistics); label a Python int.

Random horizontal flip (training augmentation, ``hflip=True``) is a deterministic function of
``(seed, epoch, index)``: a SplitMix64 hash of the three, so the same image of the same epoch is
flipped the same way however the data is sharded, however many workers load it, and after a resume.
The training loop calls ``dataset.set_epoch(epoch)`` at the start of every epoch (as with
``DistributedSampler.set_epoch``). The epoch lives in a one-element shared-memory tensor, so the call
also reaches DataLoader workers that are already running (``persistent_workers=True``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """SplitMix64 finaliser (Steele et al. 2014): a cheap, well-mixed 64-bit integer hash."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def flip_decision(seed: int, epoch: int, index: int) -> bool:
    """Whether image ``index`` is mirrored in ``epoch``: a fair coin, fixed by its three arguments."""
    return bool(_splitmix64(_splitmix64(_splitmix64(seed) ^ epoch) ^ index) >> 63)


class ImageDataset(Dataset):
    """Base of the demo, packed and folder datasets; subclasses implement ``__len__`` and ``_load``."""

    def __init__(self, resolution: int, class_names: list[str], hflip: bool, uint8: bool, seed: int):
        self.resolution = int(resolution)
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.hflip = bool(hflip)
        self.uint8 = bool(uint8)
        self.seed = int(seed)
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        """Choose the flips of ``epoch`` (call at the start of each epoch, before iterating)."""
        self._epoch.fill_(int(epoch))

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def _load(self, index: int) -> tuple[np.ndarray, int]:
        """Image ``index`` as uint8 array 3xRxR (any strides) and its label."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} images")
        img, label = self._load(index)
        if self.hflip and flip_decision(self.seed, self.epoch, index):
            img = img[:, :, ::-1]
        t = torch.from_numpy(np.ascontiguousarray(img))  # one copy: out of the cache / memory map
        if self.uint8:
            return t, label
        return t.float().div_(127.5).sub_(1.0), label

    def __getstate__(self):
        return dict(self.__dict__)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} images, {self.num_classes} classes, "
                f"{self.resolution}px, hflip={self.hflip}, uint8={self.uint8})")
