"""Small dataset files written the way the originals are: CIFAR's Python 2 pickles and binary batches,
Hugging Face ``save_to_disk`` folders and Hub-style parquet files.

CIFAR's python batches were written by Python 2's cPickle, protocol 2: every ``str`` (dict keys, class
names, file names, and the raw bytes inside each numpy array's state) is a Python 2 byte string
(opcodes ``SHORT_BINSTRING`` / ``BINSTRING``), and numpy arrays are ``numpy.core.multiarray._reconstruct``
calls. Python 3's pickler writes bytes as ``_codecs.encode`` calls at protocol 2 and names
``numpy._core`` under numpy 2, so :func:`py2_pickle` writes those objects as Python 2 did.
"""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import numpy as np

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1
    from numpy.core.multiarray import _reconstruct

_PY2_GLOBALS = {_reconstruct: ("numpy.core.multiarray", "_reconstruct"), np.ndarray: ("numpy", "ndarray"),
                np.dtype: ("numpy", "dtype")}


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler: its dispatch table can be extended
    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        data = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str

    def save_global(self, obj, name=None):
        module, name = _PY2_GLOBALS[obj]
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode("ascii"))
        self.memoize(obj)


def py2_pickle(obj) -> bytes:
    f = io.BytesIO()
    _Py2Pickler(f, protocol=2).dump(obj)
    return f.getvalue()


def cifar_images(n: int, seed: int) -> np.ndarray:
    """Random uint8 images (n, 32, 32, 3), each with a distinct red, green and blue plane."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """CIFAR's row layout: 1024 R, then 1024 G, then 1024 B values, each plane row-major."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), 3072)


CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar10(root: Path, binary: bool = False, per_batch: int = 6) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A cifar-10-batches-py (or -bin) folder of 5 train batches and a test batch; returns
    ``{split: (images (n, 32, 32, 3), labels)}``."""
    root.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list] = {"train": [], "test": []}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        images = cifar_images(per_batch, seed=k)
        labels = [(k + 3 * i) % 10 for i in range(per_batch)]
        splits["test" if name == "test_batch" else "train"].append((images, np.array(labels)))
        if binary:
            records = np.concatenate([np.array(labels, np.uint8)[:, None], cifar_rows(images)], axis=1)
            (root / f"{name}.bin").write_bytes(records.tobytes())
            continue
        batch_label = "testing batch 1 of 1" if name == "test_batch" else f"training batch {k + 1} of 5"
        (root / name).write_bytes(py2_pickle({
            "batch_label": batch_label, "labels": labels, "data": cifar_rows(images),
            "filenames": [f"image_{k}_{i:06d}.png" for i in range(per_batch)]}))
    if binary:
        (root / "batches.meta.txt").write_text("".join(n + "\n" for n in CIFAR10_NAMES) + "\n")
    else:
        (root / "batches.meta").write_bytes(py2_pickle({"num_cases_per_batch": per_batch, "label_names": CIFAR10_NAMES,
                                                        "num_vis": 3072}))
    return {s: (np.concatenate([b[0] for b in v]), np.concatenate([b[1] for b in v])) for s, v in splits.items()}


def write_cifar100(root: Path, binary: bool = False, n_train: int = 20, n_test: int = 4) -> dict:
    """A cifar-100-python (or -binary) folder, 5 train images per test image as in the original (50000 and
    10000); returns ``{split: (images, fine labels, coarse labels)}``."""
    root.mkdir(parents=True, exist_ok=True)
    fine_names = [f"fine{i:02d}" for i in range(100)]
    coarse_names = [f"coarse{i:02d}" for i in range(20)]
    out = {}
    for k, (split, n) in enumerate((("train", n_train), ("test", n_test))):
        images = cifar_images(n, seed=10 + k)
        fine = [(7 * i + k) % 100 for i in range(n)]
        coarse = [f // 5 for f in fine]
        out[split] = (images, np.array(fine), np.array(coarse))
        if binary:
            records = np.concatenate([np.array(coarse, np.uint8)[:, None], np.array(fine, np.uint8)[:, None],
                                      cifar_rows(images)], axis=1)
            (root / f"{split}.bin").write_bytes(records.tobytes())
        else:
            (root / split).write_bytes(py2_pickle({
                "filenames": [f"{split}_{i}.png" for i in range(n)], "batch_label": f"{split} batch",
                "fine_labels": fine, "coarse_labels": coarse, "data": cifar_rows(images)}))
    if binary:
        (root / "fine_label_names.txt").write_text("\n".join(fine_names) + "\n")
        (root / "coarse_label_names.txt").write_text("\n".join(coarse_names) + "\n")
    else:
        (root / "meta").write_bytes(py2_pickle({"fine_label_names": fine_names, "coarse_label_names": coarse_names}))
    return out


def hf_split(n: int, seed: int, names: list[str] | None, size=(20, 14)):
    """A ``datasets.Dataset`` of ``n`` PNG images (column ``img``, an Image feature) and, with ``names``,
    a ClassLabel column ``label``; returns (dataset, images uint8 (n, h, w, 3), labels)."""
    import datasets
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size[1], size[0], 3), dtype=np.uint8)
    labels = [i % len(names) for i in range(n)] if names else [0] * n
    columns = {"img": [Image.fromarray(a) for a in images], "note": [f"row {i}" for i in range(n)]}
    features = {"img": datasets.Image(), "note": datasets.Value("string")}
    if names:
        columns["label"], features["label"] = labels, datasets.ClassLabel(names=names)
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features)), images, np.array(labels)


def write_hf_parquet(root: Path, splits: dict) -> None:
    """The Hub's layout: ``data/<split>-00000-of-00001.parquet``, written by ``datasets``."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    for split, ds in splits.items():
        ds.to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))


def write_tiny_imagenet(root: Path, wnids=("n01443537", "n01629819", "n01641577"), per_class: int = 2,
                        val: int = 4) -> dict[str, list[tuple[str, int]]]:
    """A tiny-imagenet-200 folder: wnids.txt, train/<wnid>/images/*.JPEG (+ boxes file), val/images +
    val_annotations.txt, test/images; returns ``{split: [(relative path, label)]}``."""
    from PIL import Image

    rng = np.random.default_rng(5)
    root.mkdir(parents=True)
    (root / "wnids.txt").write_text("".join(w + "\n" for w in reversed(wnids)))  # not sorted in the original
    (root / "words.txt").write_text("".join(f"{w}\tname of {w}\n" for w in wnids))
    order = sorted(wnids)
    out: dict[str, list] = {"train": [], "val": []}
    for w in order:
        (root / "train" / w / "images").mkdir(parents=True)
        (root / "train" / w / f"{w}_boxes.txt").write_text("")
        for i in range(per_class):
            name = f"train/{w}/images/{w}_{i}.JPEG"
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / name, quality=90)
            out["train"].append((name, order.index(w)))
    (root / "val" / "images").mkdir(parents=True)
    (root / "test" / "images").mkdir(parents=True)
    lines = []
    for i in range(val):
        w = wnids[(i * 2) % len(wnids)]
        image = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        image.save(root / "val" / "images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63\n")
        out["val"].append((f"val/images/val_{i}.JPEG", order.index(w)))
    (root / "val" / "val_annotations.txt").write_text("".join(lines))
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / "test" / "images" / "test_0.JPEG")
    return out


def hf_path_cells(paths: list[str], names: list[str]):
    """A ``datasets.Dataset`` whose Image column holds paths only (no bytes), as a dataset built from local
    files keeps them until it is pushed to the Hub; labels cycle through ``names``."""
    import datasets

    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    return datasets.Dataset.from_dict({"img": [{"path": p, "bytes": None} for p in paths],
                                       "label": [i % len(names) for i in range(len(paths))]}, features=features)


def with_labels(ds, labels: list):
    """``ds`` (of :func:`hf_split`) with its ClassLabel column's values replaced by ``labels`` as stored,
    whatever they are (beyond the names, None): what a damaged or hand-made dataset holds."""
    import datasets

    features = ds.features
    plain = ds.cast_column("label", datasets.Value("int64"))
    return plain.map(lambda row, i: {"label": labels[i]}, with_indices=True).cast(features)


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """An IDX file as the MNIST originals are: big-endian int32 magic (2051 images, 2049 labels), the
    sizes, then the uint8 values row-major."""
    return struct.pack(f">{1 + array.ndim}i", magic, *array.shape) + np.ascontiguousarray(array, np.uint8).tobytes()


def digit_images(labels: np.ndarray, seed: int, side: int = 28) -> np.ndarray:
    """uint8 (n, side, side) grey pictures of the digits ``labels`` as MNIST has them (white strokes on
    black), each glyph at its own scale and near the centre, so that a small CNN learns to read them."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    font = ImageFont.load_default()
    out = np.zeros((len(labels), side, side), np.uint8)
    for i, digit in enumerate(labels):
        glyph = Image.new("L", (8, 12))
        ImageDraw.Draw(glyph).text((1, -1), str(int(digit)), fill=255, font=font)
        scale = rng.uniform(1.6, 2.0)
        glyph = glyph.resize((int(8 * scale), int(12 * scale)), Image.BILINEAR)
        canvas = Image.new("L", (side, side))
        dx, dy = (side - glyph.width) // 2 + rng.integers(-2, 3), (side - glyph.height) // 2 + rng.integers(-2, 3)
        canvas.paste(glyph, (int(dx), int(dy)))  # centred give or take 2 px, as MNIST's digits are
        out[i] = np.asarray(canvas)
    return out


def write_mnist_raw(root: Path, n_train: int = 40, n_test: int = 20, gz: bool = False, family: str = "MNIST",
                    prefix: str = "", transpose: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``root/<family>/raw/`` with the four IDX files of torchvision's layout (``.gz`` with ``gz``);
    ``prefix`` (``emnist-digits-``) and ``transpose`` (EMNIST stores images column by column) for EMNIST,
    whose test files are named ``test`` rather than ``t10k``. Returns ``{split: (images upright, labels)}``."""
    import gzip

    raw = root / family / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        labels = (np.arange(n) * 7 + seed) % 10
        images = digit_images(labels, seed)
        out[split] = (images, labels)
        stem = prefix + ("train" if split == "train" else ("test" if prefix else "t10k"))
        stored = images.transpose(0, 2, 1) if transpose else images
        for name, data in ((f"{stem}-images-idx3-ubyte", idx_bytes(stored, 2051)),
                           (f"{stem}-labels-idx1-ubyte", idx_bytes(labels.astype(np.uint8), 2049))):
            if gz:
                (raw / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (raw / name).write_bytes(data)
    return out
