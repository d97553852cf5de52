"""Reading a samples file (``sample.py --out samples.npz``) for evaluation, with one-line errors.

Arrays: ``images`` uint8 (N, H, W, 3) (memory-mapped when stored uncompressed), ``labels`` (N,), and
when sample.py wrote them, ``class_names`` (str, index = label: pairs classes with the reference by
name) and ``bn_stats`` (the BN statistics mode the images were drawn with).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError, one_line
from ..scores.stats import npz_member_memmap


@dataclass
class SampleSet:
    path: Path
    images: np.ndarray
    labels: np.ndarray
    class_names: list[str] | None = None
    bn_stats: str | None = None


def _read(p: Path) -> SampleSet:
    with np.load(p, allow_pickle=False) as f:
        missing = {"images", "labels"} - set(f.files)
        if missing:
            raise UserError(f"{p} has no {' or '.join(sorted(missing))} array; expected images uint8 (N,H,W,3) "
                            "and labels (N,) as sample.py writes")
        labels = np.asarray(f["labels"])
        names = [str(s) for s in np.asarray(f["class_names"]).reshape(-1)] if "class_names" in f.files else None
        bn_stats = str(f["bn_stats"]) if "bn_stats" in f.files else None
        images = npz_member_memmap(p, "images")
        if images is None:
            images = f["images"]
    return SampleSet(p, images, labels, names, bn_stats)


def load_samples(path: str | Path) -> SampleSet:
    """The samples file at ``path``, checked: RGB uint8 images, one integer label per image."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"samples file {p} does not exist; write one with sample.py or pass --checkpoint")
    try:
        s = _read(p)
    except UserError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as e:
        detail = one_line(e)
        if "allow_pickle" in detail or "Object arrays" in detail:
            raise UserError(f"{p}: images is an object array (images of mixed sizes?); store one uint8 "
                            "(N, H, W, 3) array of equal-sized RGB images") from None
        raise UserError(f"cannot read samples {p}: corrupt or not an .npz ({detail})") from None
    images, labels = s.images, s.labels
    if images.dtype != np.uint8:
        raise UserError(f"{p}: images are {images.dtype}, expected uint8 0..255 (quantise as a PNG would)")
    if images.ndim == 3 or (images.ndim == 4 and images.shape[3] == 1):
        raise UserError(f"{p}: images {images.shape} are grayscale; store RGB (N, H, W, 3)")
    if images.ndim != 4 or images.shape[3] != 3:
        raise UserError(f"{p}: images have shape {images.shape}, expected RGB (N, H, W, 3)")
    if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"{p}: labels {labels.dtype} {labels.shape} must be integers, one per image ({len(images)})")
    s.labels = labels.astype(np.int64)
    return s
