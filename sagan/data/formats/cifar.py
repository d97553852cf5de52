"""CIFAR-10 / CIFAR-100 as they unpack from https://www.cs.toronto.edu/~kriz/cifar.html (torchvision's folders).

- ``cifar-10-batches-py``: ``data_batch_1`` .. ``data_batch_5`` (train), ``test_batch``, ``batches.meta``;
  Python 2 pickles (protocol 2) of ``{'data': uint8 (10000, 3072), 'labels': [...], 'batch_label',
  'filenames'}``, read without trusting them (:mod:`.safe_pickle`).
- ``cifar-10-batches-bin``: the same batches as ``.bin``, records of 1 label byte + 3072 pixel bytes;
  class names in ``batches.meta.txt``.
- ``cifar-100-python``: ``train``, ``test``, ``meta`` pickles with ``fine_labels`` (100 classes, the
  default) and ``coarse_labels`` (20 superclasses, ``--labels coarse``).
- ``cifar-100-binary``: ``train.bin``, ``test.bin``, records of coarse byte, fine byte, 3072 pixel bytes.

Pixels: each row of 3072 bytes is the 1024 red values of the 32x32 image (row-major), then green, then
blue. Counts are checked: every file of the layout must be there (a missing batch is an error, not a
smaller dataset), each python batch of CIFAR-10 must hold the ``num_cases_per_batch`` its
``batches.meta`` states, a binary file must hold whole records, CIFAR-10's six binary batches the same
number of them (the odd one out is named) and CIFAR-100's ``train.bin`` five times the records of
``test.bin`` (50000 and 10000 as published), and labels and pixel rows must agree; a pickle cut short
does not load at all. Labels must be integers naming a class. A batch loaded and saved again by Python 3
(protocols 0-5, also with ``bytes`` keys as the CIFAR page's ``pickle.load(fo, encoding='bytes')`` gives
them) reads as the original.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from ...errors import UserError, short_repr
from ...io import printable
from . import DatasetFormat, FormatOptions, register_format
from .safe_pickle import load_arrays_pickle
from .source import ArrayReader, Source, array_digest

SIDE, PIXELS = 32, 3 * 32 * 32
CIFAR100_TRAIN_PER_TEST = 5  # 50000 train and 10000 test images (Krizhevsky 2009, the CIFAR page)


@dataclass(frozen=True)
class Layout:
    name: str
    folder: str  # the folder the archive unpacks to
    archive: str
    splits: dict[str, tuple[str, ...]]
    meta: tuple[str, ...]
    binary: bool
    hundred: bool  # CIFAR-100: fine and coarse labels


def _cifar10(suffix: str) -> dict[str, tuple[str, ...]]:
    return {"train": tuple(f"data_batch_{i}{suffix}" for i in range(1, 6)), "test": (f"test_batch{suffix}",)}


LAYOUTS = (
    Layout("CIFAR-10 python batches", "cifar-10-batches-py", "cifar-10-python.tar.gz", _cifar10(""),
           ("batches.meta",), binary=False, hundred=False),
    Layout("CIFAR-10 binary batches", "cifar-10-batches-bin", "cifar-10-binary.tar.gz", _cifar10(".bin"),
           ("batches.meta.txt",), binary=True, hundred=False),
    Layout("CIFAR-100 python files", "cifar-100-python", "cifar-100-python.tar.gz",
           {"train": ("train",), "test": ("test",)}, ("meta",), binary=False, hundred=True),
    Layout("CIFAR-100 binary files", "cifar-100-binary", "cifar-100-binary.tar.gz",
           {"train": ("train.bin",), "test": ("test.bin",)}, ("fine_label_names.txt", "coarse_label_names.txt"),
           binary=True, hundred=True),
)


def _files(layout: Layout) -> tuple[str, ...]:
    return (*layout.splits["train"], *layout.splits["test"], *layout.meta)


def _present(root: Path, layout: Layout) -> list[str]:
    return [f for f in _files(layout) if (root / f).is_file()]


def _layout(root: Path) -> Layout | None:
    """The layout with the most of its files in ``root`` (or named like its folder), None if none."""
    scored = [(len(_present(root, lay)), root.name == lay.folder, lay) for lay in LAYOUTS]
    count, named, layout = max(scored, key=lambda s: s[:2])
    # CIFAR-100 python's names (train, test, meta) are common words: a lone "train" file is not CIFAR
    return layout if named or count >= (2 if layout.name.startswith("CIFAR-100 python") else 1) else None


def detect(root: Path) -> bool:
    return _layout(root) is not None


def _advice(layout: Layout) -> str:
    return f"download {layout.archive} again and unpack it whole"


def _check_complete(root: Path, layout: Layout) -> None:
    present = _present(root, layout)
    missing = [f for f in _files(layout) if f not in present]
    if missing:
        raise UserError(f"{printable(root)}: {layout.name} without {missing[0]}"
                        f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}: {len(present)} of "
                        f"{len(_files(layout))} files there, a truncated download or extraction? {_advice(layout)}")


def _names(root: Path, layout: Layout, coarse: bool) -> list[str]:
    if layout.binary:
        file = layout.meta[1 if coarse else 0]
        return [line.strip() for line in (root / file).read_text(errors="replace").splitlines() if line.strip()]
    meta = _read_pickle(root / layout.meta[0], layout, "metadata file")
    key = "label_names" if not layout.hundred else ("coarse_label_names" if coarse else "fine_label_names")
    return [str(_text(n)) for n in _field(meta, key, list, root / layout.meta[0])]


def _dataset_name(layout: Layout) -> str:
    return layout.name.split(" ")[0]  # CIFAR-10 or CIFAR-100


def _text(value):
    """A Python 3 re-save with ``encoding='bytes'`` keeps keys and names as bytes: the text they were."""
    return value.decode("latin1") if isinstance(value, bytes) else value


def _read_pickle(path: Path, layout: Layout, role: str) -> dict:
    d = load_arrays_pickle(path, f"{_dataset_name(layout)} {role}", _advice(layout))
    if not isinstance(d, dict):
        raise UserError(f"{printable(path)}: holds a {type(d).__name__}, not the dict of a {_dataset_name(layout)} "
                        f"{role}; {_advice(layout)}")
    return {_text(k): v for k, v in d.items()}


def _field(d: dict, key: str, kind: type, path: Path):
    if not isinstance(d.get(key), kind):
        keys = ", ".join(map(str, list(d)[:6]))
        raise UserError(f"{printable(path)}: no {key!r} {kind.__name__} in it (it has {keys or 'no keys'}); not "
                        f"a file of this CIFAR folder? download the archive again")
    return d[key]


def _class_numbers(values: list, n_classes: int, path: Path, key: str, layout: Layout) -> np.ndarray:
    """A batch's label list as int64, each an integer naming one of the ``n_classes`` classes."""
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < n_classes:
            raise UserError(f"{printable(path)}: {key}[{i}] is {short_repr(v, 40)}, not a class number "
                            f"0..{n_classes - 1}; {_advice(layout)}")
    return np.asarray(values, dtype=np.int64)


def _read_batch(path: Path, layout: Layout, coarse: bool, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(pixel rows uint8 (n, 3072), labels int64 (n,)) of one batch file."""
    if layout.binary:
        label_bytes = 2 if layout.hundred else 1
        raw = np.fromfile(path, dtype=np.uint8)
        record = label_bytes + PIXELS
        if raw.size == 0 or raw.size % record:
            raise UserError(f"{printable(path)}: {raw.size} bytes, not a whole number of {record}-byte records; a "
                            f"truncated download? {_advice(layout)}")
        rows = raw.reshape(-1, record)
        return rows[:, label_bytes:], rows[:, 0 if coarse or not layout.hundred else 1].astype(np.int64)
    d = _read_pickle(path, layout, "batch")
    data = _field(d, "data", np.ndarray, path)
    key = "labels" if not layout.hundred else ("coarse_labels" if coarse else "fine_labels")
    labels = _class_numbers(_field(d, key, list, path), n_classes, path, key, layout)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS or len(data) != len(labels):
        raise UserError(f"{printable(path)}: data {data.dtype} {data.shape} with {len(labels)} labels, not uint8 "
                        f"(n, {PIXELS}) with n labels; {_advice(layout)}")
    return data, labels


def _check_counts(root: Path, layout: Layout, counts: dict[str, int]) -> None:
    """Every batch holds as many images as the layout's own metadata (or its sibling batches) say."""
    if layout.hundred:
        if layout.binary:
            _check_cifar100_binary(root, layout)
        return
    if layout.binary:
        sizes = [(root / f).stat().st_size // (1 + PIXELS) for f in _files(layout)[:6]]
        usual = Counter(sizes).most_common(1)[0][0]  # the odd batch out is the damaged one, short or long
        expected, source = {f: usual for f in counts}, "the other batches"
    else:
        meta = _read_pickle(root / layout.meta[0], layout, "metadata file")
        n = _field(meta, "num_cases_per_batch", int, root / layout.meta[0])
        expected, source = {f: n for f in counts}, f"{layout.meta[0]} (num_cases_per_batch)"
    for file, n in counts.items():
        if n != expected[file]:
            raise UserError(f"{printable(root / file)}: {n} images but {source} say {expected[file]}; a "
                            f"{'truncated' if n < expected[file] else 'damaged'} download? {_advice(layout)}")


def _check_cifar100_binary(root: Path, layout: Layout) -> None:
    """``train.bin`` holds 5 records per record of ``test.bin``; the one short of that ratio is named."""
    record = 2 + PIXELS
    train, test = ((root / layout.splits[s][0]).stat().st_size // record for s in ("train", "test"))
    if train != CIFAR100_TRAIN_PER_TEST * test:
        short, n, other, m = (("train", train, "test", test) if train < CIFAR100_TRAIN_PER_TEST * test else
                              ("test", test, "train", train))
        raise UserError(f"{printable(root / layout.splits[short][0])}: {n} images but {layout.splits[other][0]} has {m}"
                        f" (CIFAR-100 has {CIFAR100_TRAIN_PER_TEST} train images per test image: 50000 and 10000); "
                        f"a truncated download? {_advice(layout)}")


def cifar_source(root: Path, options: FormatOptions) -> Source:
    layout = _layout(root)
    split = options.split or "train"
    if split not in layout.splits:
        raise UserError(f"--split {split}: {layout.name} has the splits {', '.join(layout.splits)}")
    if options.labels not in (None, "fine", "coarse") or (options.labels == "coarse" and not layout.hundred):
        raise UserError(f"--labels {options.labels}: {layout.name} has "
                        f"{'fine (default) and coarse labels' if layout.hundred else 'one label set; drop --labels'}")
    coarse = options.labels == "coarse"
    _check_complete(root, layout)
    classes = _names(root, layout, coarse)
    rows, labels, names, counts = [], [], [], {}
    for file in layout.splits[split]:
        data, lab = _read_batch(root / file, layout, coarse, len(classes))
        bad = lab[(lab < 0) | (lab >= len(classes))]
        if bad.size:
            raise UserError(f"{printable(root / file)}: label {int(bad[0])} but {len(classes)} class names; "
                            f"{_advice(layout)}")
        names.append((sum(counts.values()), file))
        counts[file] = len(data)
        rows.append(data)
        labels.append(lab)
    _check_counts(root, layout, counts)
    # 1024 R, 1024 G, 1024 B per row, each plane row-major -> (n, 32, 32, 3)
    images = np.ascontiguousarray(np.concatenate(rows).reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1))
    labels = np.concatenate(labels)
    what = f"{layout.name}, {split} split{', coarse labels' if coarse else ''}"
    return Source(what, classes, range(len(images)), labels, ArrayReader(images, names), resolution=SIDE,
                  parallel=False, fingerprint_of=partial(array_digest, what, images, labels))


register_format(DatasetFormat(
    "cifar", "torchvision's CIFAR folders (cifar-10-batches-py, cifar-10-batches-bin, cifar-100-python, "
    "cifar-100-binary)", detect, source=cifar_source, priority=90, options=("split", "labels"), sized=True))
