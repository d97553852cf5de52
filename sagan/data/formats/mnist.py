"""MNIST and its kin as torchvision unpacks them: IDX files in ``<Name>/raw/``.

- ``MNIST/raw/``: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte`` (each also as ``.gz``); ``FashionMNIST/raw/`` and ``KMNIST/raw/`` the same.
- ``EMNIST/raw/``: ``emnist-<subset>-{train,test}-{images-idx3,labels-idx1}-ubyte`` (subset: byclass,
  bymerge, balanced, letters, digits, mnist; ``--labels`` chooses one when several are there); EMNIST
  stores every image transposed (column-major), which is undone here.

``--data`` may name the folder around ``MNIST/``, the ``MNIST`` folder, its ``raw/`` folder or any folder
holding the files. IDX (LeCun et al., http://yann.lecun.com/exdb/mnist/): a big-endian header of int32
values, magic 2051 for images (then count, rows, cols, then uint8 pixels row-major) and 2049 for labels
(then count, then uint8 labels). Checked: magic, the header against the file's length (a truncated or
padded file is an error, never a smaller set), images and labels of a split the same count, labels
within the classes. ``--split train`` (default) or ``test``. Grey images become RGB (the grey value in
all three channels) at the configured resolution.
"""

from __future__ import annotations

import gzip
import re
import zlib
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import UserError
from ...io import printable
from ..images import _crop_resize
from . import DatasetFormat, FormatOptions, register_format
from .source import ArrayReader, Source, array_digest

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
ADVICE = "a truncated download? download the archive again and unpack it whole"
FAMILIES = {  # torchvision's folder name: (what, class names)
    "MNIST": ("MNIST", [str(d) for d in range(10)]),
    "FashionMNIST": ("Fashion-MNIST", ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                       "Sneaker", "Bag", "Ankle boot"]),
    "KMNIST": ("KMNIST", ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]),
    "EMNIST": ("EMNIST", []),  # classes depend on the subset: numbered from the labels
}
# train-images-idx3-ubyte, t10k-labels-idx1-ubyte.gz, emnist-letters-test-images-idx3-ubyte
_NAME = re.compile(r"^(?P<prefix>emnist-(?P<subset>[a-z]+)-)?(?P<split>train|t10k|test)-(?P<kind>images-idx3|labels-idx1)"
                   r"-ubyte(?P<gz>\.gz)?$")


def _idx_files(folder: Path) -> dict[tuple[str, str, str], Path]:
    """``{(subset or "", split train|test, images|labels): path}`` of the IDX files directly in ``folder``
    (an uncompressed file wins over its ``.gz``)."""
    found: dict[tuple[str, str, str], Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir(), key=lambda p: p.name.endswith(".gz")):
        m = _NAME.match(path.name)
        if m and path.is_file():
            key = (m["subset"] or "", "train" if m["split"] == "train" else "test", m["kind"].split("-")[0])
            found.setdefault(key, path)
    return found


def idx_folder(root: Path) -> Path | None:
    """The folder holding the IDX files: ``root`` itself, ``root/raw``, or ``root/<Family>/raw``."""
    candidates = [root, root / "raw", *(root / name / "raw" for name in FAMILIES)]
    return next((c for c in candidates if _idx_files(c)), None)


def detect(root: Path) -> bool:
    return idx_folder(root) is not None


def _read_bytes(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (EOFError, OSError, zlib.error) as e:
        raise UserError(f"{printable(path)}: cannot be read ({e}); {ADVICE}") from None


def _header(data: bytes, path: Path, magic: int, dims: int) -> tuple[int, ...]:
    """The ``dims`` sizes after the magic number of an IDX file, checked against its length."""
    what = "images" if magic == IMAGES_MAGIC else "labels"
    head = 4 * (1 + dims)
    if len(data) < head:
        raise UserError(f"{printable(path)}: {len(data)} bytes, shorter than an IDX header; {ADVICE}")
    found, *sizes = np.frombuffer(data, ">i4", 1 + dims).tolist()
    if found != magic:
        raise UserError(f"{printable(path)}: magic number {found}, not {magic} (IDX {what}); not an IDX {what} file, "
                        f"or a .gz left compressed under a name without .gz?")
    expected = head + int(np.prod(sizes, dtype=np.int64))
    if len(data) != expected:
        raise UserError(f"{printable(path)}: {len(data)} bytes but its header ({' x '.join(map(str, sizes))} {what}) "
                        f"says {expected}; {ADVICE}")
    return tuple(sizes)


def read_idx_images(path: Path) -> np.ndarray:
    """uint8 (N, rows, cols) of an IDX images file (magic 2051)."""
    data = _read_bytes(path)
    n, rows, cols = _header(data, path, IMAGES_MAGIC, 3)
    return np.frombuffer(data, np.uint8, offset=16).reshape(n, rows, cols)


def read_idx_labels(path: Path) -> np.ndarray:
    """int64 (N,) of an IDX labels file (magic 2049)."""
    data = _read_bytes(path)
    _header(data, path, LABELS_MAGIC, 1)
    return np.frombuffer(data, np.uint8, offset=8).astype(np.int64)


def _family(folder: Path, subset: str) -> str:
    """EMNIST by its file names; otherwise by the folder's name (torchvision's ``FashionMNIST/raw``, or
    ``fashion-mnist`` / ``fashion_mnist`` as Zalando's repository and Debian's package name it)."""
    if subset:
        return "EMNIST"
    plain = {name.lower(): name for name in FAMILIES}
    names = [folder.parent.name, folder.name] if folder.name == "raw" else [folder.name]
    return next((plain[k] for n in names if (k := n.lower().replace("-", "").replace("_", "")) in plain), "MNIST")


def _subset(files: dict, folder: Path, options: FormatOptions) -> str:
    subsets = sorted({k[0] for k in files})
    if options.labels is not None:
        if options.labels not in subsets or not options.labels:
            raise UserError(f"--labels {options.labels}: {printable(folder)} holds "
                            f"{'the EMNIST subsets ' + ', '.join(subsets) if subsets != [''] else 'one label set; drop --labels'}")
        return options.labels
    if len(subsets) > 1:
        raise UserError(f"{printable(folder)} holds several EMNIST subsets ({', '.join(s or 'plain MNIST' for s in subsets)}); "
                        f"choose one with --labels")
    return subsets[0]


def read_split(root: Path, options: FormatOptions) -> tuple[str, list[str], np.ndarray, np.ndarray, list[Path]]:
    """(what, class names, images uint8 (N, H, W) upright, labels int64 (N,), [images file, labels file])."""
    folder = idx_folder(root)
    files = _idx_files(folder)
    split = options.split or "train"
    if split not in ("train", "test"):
        raise UserError(f"--split {split}: IDX folders have the splits train and test (t10k)")
    subset = _subset(files, folder, options)
    family = _family(folder, subset)
    paths = []
    for kind in ("images", "labels"):
        if (subset, split, kind) not in files:
            stem = f"{'emnist-' + subset + '-' if subset else ''}{'train' if split == 'train' else 't10k'}-{kind}"
            raise UserError(f"{printable(folder)}: no {stem}-{'idx3' if kind == 'images' else 'idx1'}-ubyte[.gz] for "
                            f"the {split} split; {ADVICE}")
        paths.append(files[(subset, split, kind)])
    images, labels = read_idx_images(paths[0]), read_idx_labels(paths[1])
    if len(images) != len(labels):
        raise UserError(f"{printable(paths[0])}: {len(images)} images but {printable(paths[1].name)} has {len(labels)} "
                        f"labels; {ADVICE}")
    if family == "EMNIST":
        images = images.transpose(0, 2, 1)  # EMNIST stores each image column by column
    what, classes = FAMILIES[family]
    classes = classes or [str(k) for k in range(int(labels.max(initial=0)) + 1)]
    bad = labels[labels >= len(classes)]
    if bad.size:
        raise UserError(f"{printable(paths[1])}: label {int(bad[0])} but {what} has {len(classes)} classes; {ADVICE}")
    what = f"{what}{' ' + subset if subset else ''}, {split} split"
    return what, classes, np.ascontiguousarray(images), labels, paths


def resize_grey(images: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 (N, H, W) grey images centre-cropped and resized to (N, R, R) as every image sagan reads is."""
    if images.shape[1] == images.shape[2] == resolution:
        return images
    return np.stack([_crop_resize(Image.fromarray(img, "L"), resolution) for img in images]) if len(images) else \
        np.zeros((0, resolution, resolution), np.uint8)


class GreyArrayReader(ArrayReader):
    """Grey images held in memory as uint8 (N, H, W); each is loaded as RGB with the grey value in all three
    channels."""

    def load(self, item: int, resolution: int) -> np.ndarray:
        grey = resize_grey(self.images[item][None], resolution)[0]
        return np.repeat(grey[..., None], 3, axis=2)


def mnist_source(root: Path, options: FormatOptions) -> Source:
    what, classes, images, labels, paths = read_split(root, options)
    return Source(what, classes, range(len(images)), labels, GreyArrayReader(images, [(0, paths[0].name)]),
                  resolution=None, parallel=False, fingerprint_of=partial(array_digest, what, images, labels))


register_format(DatasetFormat(
    "mnist", "IDX files of MNIST, Fashion-MNIST, KMNIST or EMNIST as torchvision unpacks them (MNIST/raw/"
    "train-images-idx3-ubyte ...)", detect, source=mnist_source, priority=82, options=("split", "labels")))
