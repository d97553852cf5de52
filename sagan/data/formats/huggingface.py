"""Hugging Face datasets on disk: a ``save_to_disk`` folder, or a folder of parquet files (the Hub's layout).

- ``save_to_disk`` of a ``Dataset`` (``state.json``, ``dataset_info.json``, ``data-*.arrow``) or of a
  ``DatasetDict`` (``dataset_dict.json`` and one folder per split);
- parquet as a dataset repository on the Hub holds it: ``data/train-*.parquet``, ``data/test-*.parquet``
  (also ``train-*.parquet`` or ``train/*.parquet`` at the top).

The image column is the one whose feature is ``datasets.Image``; labels and class names come from the
``ClassLabel`` column (``--labels NAME`` picks one of several, ``NAME`` or ``NAME_label``); without one the
set is unlabelled (``num_classes`` 0). ``--split`` picks the split (default ``train``). Images are decoded
from their stored bytes by the same code as image files (EXIF, RGB, centre crop, Lanczos).

Needs the optional ``datasets`` package (``pip install -e ".[hf]"``); parquet rows are read with pyarrow
one row group at a time, so no copy of the data is made (no cache under ~/.cache).
"""

from __future__ import annotations

import bisect
import io
from functools import partial
from pathlib import Path

import numpy as np

from ...errors import UserError, one_line
from ...io import printable
from ..images import image_side, load_image
from . import DatasetFormat, FormatOptions, register_format
from .source import Source, listing_digest, path_inside

MARKERS = ("dataset_dict.json", "state.json", "dataset_info.json")
PARQUET_PATTERNS = ("data/{split}-*.parquet", "{split}-*.parquet", "data/{split}/*.parquet", "{split}/*.parquet")


def _datasets():
    try:
        import datasets
    except ImportError:
        raise UserError('reading a Hugging Face dataset needs the datasets package: pip install -e ".[hf]" '
                        '(or pip install datasets)') from None
    return datasets


def _parquet_files(root: Path, split: str) -> list[Path]:
    for pattern in PARQUET_PATTERNS:
        files = sorted(root.glob(pattern.format(split=split)))
        if files:
            return files
    return []


def detect(root: Path) -> bool:
    # parquet files at the top, in data/ or in train/ only: never a glob through every sub-folder (a class
    # tree such as ImageNet's train/ holds 1.28M files)
    return (any((root / m).is_file() for m in MARKERS)
            or any(next(folder.glob("*.parquet"), None) for folder in (root, root / "data", root / "train")))


def _columns(features, root: Path, labels: str | None) -> tuple[str, str | None]:
    """(image column, ClassLabel column or None) from a dataset's features."""
    datasets = _datasets()
    images = [k for k, f in features.items() if isinstance(f, datasets.Image)]
    if not images:
        kinds = ", ".join(f"{k} ({type(f).__name__})" for k, f in list(features.items())[:8])
        raise UserError(f"{printable(root)}: no image column (no column has an Image feature; columns: {kinds}); "
                        f"sagan reads image datasets")
    classes = [k for k, f in features.items() if isinstance(f, datasets.ClassLabel)]
    if labels is not None:
        chosen = [k for k in classes if k in (labels, f"{labels}_label", f"{labels}_labels")]
        if not chosen:
            raise UserError(f"--labels {labels}: {printable(root)} has no such ClassLabel column "
                            f"(it has {', '.join(classes) or 'none'})")
        return images[0], chosen[0]
    preferred = [k for k in classes if k in ("label", "labels")]
    return images[0], (preferred or classes or [None])[0]


def _class_names(features, column: str | None) -> list[str]:
    return [] if column is None else [str(n) for n in features[column].names]


class HFReader:
    """Image bytes of one split, opened lazily in the process that reads (cheap to pickle)."""

    def __init__(self, root: Path, split: str | None, column: str, parquet: list[Path] | None):
        self.root, self.split, self.column, self.parquet = root, split, column, parquet
        self._table = None
        self._cached: tuple[int, list] | None = None  # (row group number, its image values)

    def __getstate__(self):
        return {**self.__dict__, "_table": None, "_cached": None}

    def _value(self, item: int) -> dict:
        if self.parquet is None:
            if self._table is None:
                ds = _load_from_disk(self.root, self.split)
                self._table = ds.select_columns([self.column]).cast_column(self.column, _datasets().Image(decode=False))
            return self._table[item][self.column]
        if self._table is None:
            import pyarrow.parquet as pq

            files = [pq.ParquetFile(f) for f in self.parquet]
            groups = [(f, g) for f in files for g in range(f.metadata.num_row_groups)]
            starts = np.cumsum([0] + [f.metadata.row_group(g).num_rows for f, g in groups]).tolist()
            self._table = (groups, starts)
        groups, starts = self._table
        k = bisect.bisect_right(starts, item) - 1
        if self._cached is None or self._cached[0] != k:
            f, g = groups[k]
            self._cached = (k, f.read_row_group(g, columns=[self.column]).column(0).to_pylist())
        return self._cached[1][item - starts[k]]

    def _file(self, item: int):
        value = self._value(item)
        if isinstance(value, dict) and value.get("bytes"):
            return io.BytesIO(value["bytes"])
        path = (value.get("path") if isinstance(value, dict) else None) or "?"
        rel = path_inside(self.root, path)
        if rel is None:
            raise UserError(f"{self.name(item)}: its image is a path, {printable(path)!r}, outside the dataset folder; "
                            f"refused: store the images' bytes in the dataset (as push_to_hub does) or copy the files "
                            f"into {printable(self.root)} with paths relative to it")
        return self.root / rel

    def load(self, item: int, resolution: int) -> np.ndarray:
        return load_image(self._file(item), resolution)

    def side(self, item: int) -> int | None:
        return image_side(self._file(item))

    def name(self, item: int) -> str:
        return f"{self.root} split {self.split or 'train'} row {item}"


def _load_from_disk(root: Path, split: str | None):
    datasets = _datasets()
    try:
        ds = datasets.load_from_disk(str(root))
    except Exception as e:  # noqa: BLE001 - FileNotFoundError, json/arrow errors: a damaged folder
        raise UserError(f"{printable(root)}: not a readable save_to_disk folder ({one_line(e, 120)})") from None
    if isinstance(ds, datasets.DatasetDict):
        if (split or "train") not in ds:
            raise UserError(f"--split {split or 'train'}: {printable(root)} has the splits {', '.join(ds)}")
        return ds[split or "train"]
    if split is not None and ds.split is not None and str(ds.split) != split:
        raise UserError(f"--split {split}: {printable(root)} holds only the {ds.split} split")
    return ds


def _parquet_listing(root: Path, split: str, labels: str | None):
    import pyarrow.parquet as pq

    files = _parquet_files(root, split)
    if not files:
        found = sorted({p.name.split("-")[0] for p in root.glob("**/*.parquet")})
        raise UserError(f"--split {split}: no {split} parquet files in {printable(root)} (looked for "
                        f"{', '.join(p.format(split=split) for p in PARQUET_PATTERNS)}; found {', '.join(found)})")
    try:
        features = _datasets().Features.from_arrow_schema(pq.read_schema(files[0]))
        image, label = _columns(features, files[0], labels)
        values = (_label_values([pq.read_table(f, columns=[label]).column(0) for f in files], root, split, label)
                  if label else np.zeros(sum(pq.ParquetFile(f).metadata.num_rows for f in files), np.int64))
    except (OSError, ValueError) as e:  # pyarrow.ArrowInvalid is a ValueError
        raise UserError(f"{printable(files[0])}: not a readable parquet file ({one_line(e, 120)})") from None
    stamp = "".join(f"{f.relative_to(root)} {f.stat().st_size}\n" for f in files)
    return features, image, label, values, files, stamp


def _label_values(columns: list, root: Path, split: str, label: str) -> np.ndarray:
    """The labels of arrow columns (one per file) as int64; one line naming the first row without one (null)."""
    import pyarrow as pa

    column = pa.chunked_array([c for col in columns for c in getattr(col, "chunks", [col])], type=columns[0].type)
    if column.null_count:
        row = next(i for i, v in enumerate(column.is_null().to_pylist()) if v)
        raise UserError(f"{printable(root)}: split {split} row {row} has no label ({label} is null); label every row "
                        f"(a class of the ClassLabel column) or use a labelled split")
    return np.asarray(column.to_numpy(), dtype=np.int64)


def hf_source(root: Path, options: FormatOptions) -> Source:
    _datasets()  # the one-line "pip install" error first, before pyarrow (a dependency of datasets)
    split = options.split or "train"
    if any((root / m).is_file() for m in MARKERS):
        ds = _load_from_disk(root, options.split)
        features = ds.features
        image, label = _columns(features, root, options.labels)
        values = (_label_values([ds.with_format("arrow")[label]], root, split, label) if label
                  else np.zeros(len(ds), np.int64))
        files, stamp = None, getattr(ds, "_fingerprint", "")
    else:
        features, image, label, values, files, stamp = _parquet_listing(root, split, options.labels)
    values = np.asarray(values, dtype=np.int64)
    if values.size and values.min() < 0:
        raise UserError(f"{printable(root)}: split {split} has rows without a label ({label} = {int(values.min())}); "
                        f"use a labelled split (--split train)")
    classes = _class_names(features, label)
    if label and values.size and values.max() >= len(classes):
        row = int(np.argmax(values >= len(classes)))
        raise UserError(f"{printable(root)}: split {split} row {row} has label {int(values[row])} but the ClassLabel "
                        f"column {label} names {len(classes)} classes (0..{len(classes) - 1}); fix the labels or the "
                        f"names (dataset.cast_column({label!r}, ClassLabel(names=[...])))")
    what = f"Hugging Face dataset, {split} split, image column {image}, labels {label or 'none (unlabelled)'}"
    items = range(len(values))
    return Source(what, classes, items, values if label else np.zeros(len(values), np.int64),
                  HFReader(root, options.split if files is None else split, image, files),
                  fingerprint_of=partial(listing_digest, items, values, prefix=f"{what}\n{stamp}\n"))


register_format(DatasetFormat("huggingface", "a Hugging Face dataset (save_to_disk folder, or data/train-*.parquet)",
                              detect, source=hf_source, priority=80, options=("split", "labels")))
