"""Feature statistics: streaming mean/covariance in float64 and the reference ``.npz`` file.

Reference file (``evaluate.py stats``), an uncompressed ``.npz``:

    mu, sigma          float64 (2048,), (2048, 2048)   pytorch-fid's keys: swap files with pytorch-fid
    num_images         int
    class_counts       int64 (C,)                       images per class (C = number of classes)
    class_offsets      int64 (C + 1,)                   rows of class c: class_offsets[c]:class_offsets[c+1]
    class_features     float32 or float16 (N, 2048)     raw features grouped by class (for intra-FID)
    class_names        str (C,)                         class c's name (pairs generated and real classes)
    protocol           str                              JSON: resize protocol, Inception weights sha256,
                                                        source, resolution, dtype

Per-class covariances are never formed: 1000 of 2048 x 2048 float64 would be 32 GB, and with ~1300 images
per class they have rank < 2048 anyway. intra-FID works from the class's feature rows (see
``frechet.class_frechet_distance``). ``class_features`` is read through a memory map (the member is stored
uncompressed), so a 10 GB ImageNet reference costs one class's rows of RAM at a time; KID and
precision/recall read their rows from the same memory map.

A plain pytorch-fid ``mu``/``sigma`` file records no protocol: it is taken as ``pytorch-fid`` resize with
unknown Inception weights (:attr:`RefStats.resize`).
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import UserError, one_line
from ..io import atomic_write
from .inception import FEATURE_DIM
from .resize import RESIZE_MODES


class FeatureStats:
    """Streaming mean and unbiased covariance in float64 (Chan et al.'s pairwise update), mergeable.

    Rows are buffered and folded in blocks of ``block`` (the d x d update costs the same for 50 rows as
    for 4096, so folding every Inception batch would dominate the time on ImageNet).
    """

    def __init__(self, dim: int = FEATURE_DIM, block: int = 4096):
        self.dim, self.block = dim, block
        self._n = 0
        self._mean = np.zeros(dim, np.float64)
        self._m2 = np.zeros((dim, dim), np.float64)  # sum of outer products of deviations from the mean
        self._pending: list[np.ndarray] = []
        self._num_pending = 0

    def update(self, x: np.ndarray) -> "FeatureStats":
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected features (n, {self.dim}), got {x.shape}")
        if len(x):
            self._pending.append(np.array(x, np.float64))
            self._num_pending += len(x)
            if self._num_pending >= self.block:
                self._flush()
        return self

    def _flush(self) -> None:
        if not self._pending:
            return
        x = np.concatenate(self._pending)
        self._pending, self._num_pending = [], 0
        mean = x.mean(0)
        xc = x - mean
        self._combine(len(x), mean, xc.T @ xc)

    def _combine(self, n_b: int, mean_b: np.ndarray, m2_b: np.ndarray) -> None:
        n = self._n + n_b
        delta = mean_b - self._mean
        self._m2 += m2_b + np.outer(delta, delta) * (self._n * n_b / n)
        self._mean += delta * (n_b / n)
        self._n = n

    def merge(self, other: "FeatureStats") -> "FeatureStats":
        other._flush()
        if other._n:
            self._flush()
            self._combine(other._n, other._mean, other._m2)
        return self

    @property
    def n(self) -> int:
        return self._n + self._num_pending

    @property
    def mean(self) -> np.ndarray:
        self._flush()
        return self._mean

    def cov(self) -> np.ndarray:
        """Unbiased covariance (N - 1), as pytorch-fid's ``np.cov(rowvar=False)``."""
        self._flush()
        if self._n < 2:
            raise UserError(f"a covariance needs at least 2 images, got {self._n}")
        return self._m2 / (self._n - 1)


# --------------------------------------------------------------------------------------------------
# reference file


@dataclass
class RefStats:
    """A loaded reference: global ``mu``/``sigma`` and, when present, per-class feature rows."""

    path: str
    mu: np.ndarray
    sigma: np.ndarray
    num_images: int | None = None
    class_offsets: np.ndarray | None = None
    class_names: list[str] | None = None
    protocol: dict = field(default_factory=dict)
    recorded_protocol: bool = True  # False for a plain pytorch-fid mu/sigma file
    _class_features: np.ndarray | None = None  # memmap or array (N, d)

    @property
    def resize(self) -> str | None:
        """The resize protocol of the reference's features: a name of :data:`RESIZE_MODES`, ``pytorch-fid``
        for a plain pytorch-fid file (it records nothing), None when a file of ours lacks it."""
        if not self.recorded_protocol:
            return "pytorch-fid"
        value = self.protocol.get("resize")
        if value is None or value in RESIZE_MODES:
            return value
        # written before protocols had names: "pytorch-fid: uint8 -> [0,1] -> bilinear 299 ..."
        return "pytorch-fid" if str(value).startswith("pytorch-fid") else str(value)

    @property
    def weights_sha256(self) -> str | None:
        return self.protocol.get("weights_sha256")

    @property
    def dim(self) -> int:
        return int(self.mu.shape[0])

    @property
    def num_classes(self) -> int | None:
        return None if self.class_offsets is None else len(self.class_offsets) - 1

    @property
    def has_classes(self) -> bool:
        """Whether the real feature rows are there (intra-FID, KID, precision/recall/density/coverage)."""
        return self._class_features is not None

    def class_count(self, c: int) -> int:
        return int(self.class_offsets[c + 1] - self.class_offsets[c])

    def class_features(self, c: int) -> np.ndarray:
        """Feature rows (n_c, d) of class ``c`` (a read of one slice of the memory map)."""
        if not self.has_classes:
            raise UserError(f"reference {self.path} has no per-class features; rebuild it with `evaluate.py stats`")
        return np.array(self._class_features[self.class_offsets[c] : self.class_offsets[c + 1]])  # a copy, not a view

    def features(self, rows: np.ndarray) -> np.ndarray:
        """Real feature rows (indices into the class-grouped rows, any order) as float32, read from the
        memory map in increasing order and returned in the order given."""
        if not self.has_classes:
            raise UserError(f"reference {self.path} has no feature rows (a pytorch-fid mu/sigma file?); "
                            "rebuild it with `evaluate.py stats`")
        rows = np.asarray(rows, np.int64)
        order = np.argsort(rows, kind="stable")
        out = np.empty((len(rows), self.dim), np.float32)
        out[order] = self._class_features[rows[order]]
        return out

    @property
    def num_feature_rows(self) -> int:
        return 0 if not self.has_classes else len(self._class_features)


def row_reader(source: np.ndarray | RefStats) -> tuple[int, Callable[[np.ndarray], np.ndarray]]:
    """(number of rows, ``rows -> float32 features``) of a feature array or of a reference's rows."""
    if isinstance(source, RefStats):
        return source.num_feature_rows, source.features
    return len(source), lambda rows: np.asarray(source[rows], np.float32)


ZIP_SLACK = 1 << 16  # zip headers and the small arrays (counts, offsets, protocol)
NAME_BYTES = 4 * 64  # a class name stored as numpy unicode, generously


def ref_file_bytes(num_rows: int, dim: int = FEATURE_DIM, features_dtype: str = "float32",
                   num_classes: int = 1000) -> int:
    """About the size of a reference ``.npz`` (a little over): mu and sigma in float64, ``num_rows``
    feature rows in ``features_dtype`` and ``num_classes`` names."""
    rows = num_rows * dim * np.dtype(features_dtype).itemsize
    return (dim * dim + dim) * 8 + rows + num_classes * (NAME_BYTES + 16) + ZIP_SLACK


def save_ref(path: str | os.PathLike, stats: FeatureStats, features: np.ndarray | None = None,
             class_index: Sequence[np.ndarray] | None = None, class_names: Sequence[str] | None = None,
             protocol: dict | None = None, features_dtype: str = "float32") -> Path:
    """Write a reference ``.npz`` atomically (:mod:`sagan.io`).

    ``features`` (N, d) (a memmap is fine) and ``class_index[c]`` (the rows of class c) add the per-class
    data; the rows are streamed into one uncompressed member, one class at a time.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"mu": stats.mean, "sigma": stats.cov(), "num_images": np.int64(stats.n),
              "protocol": np.array(json.dumps(protocol or {}))}
    if class_index is not None:
        counts = np.array([len(r) for r in class_index], np.int64)
        arrays["class_counts"] = counts
        arrays["class_offsets"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        names = list(class_names) if class_names is not None else [str(c) for c in range(len(counts))]
        arrays["class_names"] = np.array(names, dtype=str)
    num_rows = int(arrays["class_offsets"][-1]) if class_index is not None else 0
    names_bytes = arrays["class_names"].nbytes if class_index is not None else 0
    size = ref_file_bytes(num_rows, stats.dim, features_dtype, num_classes=0) + names_bytes
    # space reserved up front: a full disk fails before the first byte, not after gigabytes
    with atomic_write(path, reserve=size) as out, zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED,
                                                                  allowZip64=True) as zf:
        for key, arr in arrays.items():
            with zf.open(f"{key}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(arr), allow_pickle=False)
        if class_index is not None:
            dtype = np.dtype(features_dtype)
            header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                      "shape": (num_rows, stats.dim)}
            with zf.open("class_features.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array_header_2_0(f, header)
                for rows in class_index:
                    f.write(np.ascontiguousarray(features[np.sort(rows)], dtype=dtype).tobytes())
    return path


def npz_member_memmap(path: Path, key: str) -> np.ndarray | None:
    """Memory-map an uncompressed ``.npy`` member of a zip (None when compressed)."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"{key}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)  # local file header: name and extra-field lengths at bytes 26..30
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    if dtype.hasobject:  # pickled objects cannot be mapped; let np.load refuse them
        return None
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def _check_finite(p: Path, key: str, arr: np.ndarray, rows: int = 1 << 16) -> None:
    """Refuse NaN/Inf in a reference array (FID inf, KID nan, or a LinAlgError after the Inception work);
    feature rows are checked in blocks through their memory map."""
    for i in range(0, max(len(arr), 1), rows):
        if not np.isfinite(arr[i : i + rows]).all():
            raise UserError(f"{p}: {key} holds NaN/Inf values (a damaged or diverged reference); recreate it with "
                            "`evaluate.py stats`")


def load_ref(path: str | os.PathLike, expected_dim: int = FEATURE_DIM) -> RefStats:
    """Load a reference ``.npz`` (ours or pytorch-fid's ``mu``/``sigma`` file) with one-line errors."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"reference stats {p} do not exist; create them with `evaluate.py stats --data PATH --out {p}`")
    try:
        with np.load(p, allow_pickle=False) as f:
            keys = set(f.files)
            missing = {"mu", "sigma"} - keys
            if missing:
                raise UserError(f"{p} has no {' or '.join(sorted(missing))} array; it is not an FID statistics file "
                                "(make one with `evaluate.py stats`)")
            mu = np.asarray(f["mu"], np.float64)
            sigma = np.asarray(f["sigma"], np.float64)
            small = {k: f[k] for k in ("num_images", "class_offsets", "class_names", "protocol") if k in keys}
    except UserError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise UserError(f"cannot read reference stats {p}: corrupt or not an .npz ({one_line(e)}); "
                        "recreate it with `evaluate.py stats`") from None
    if mu.shape != (expected_dim,) or sigma.shape != (expected_dim, expected_dim):
        raise UserError(f"{p} holds {mu.shape[0] if mu.ndim == 1 else mu.shape}-d statistics (sigma {sigma.shape}), "
                        f"but Inception pool features are {expected_dim}-d; use stats of the 2048-d pool layer")
    for key, arr in (("mu", mu), ("sigma", sigma)):
        _check_finite(p, key, arr)
    ref = RefStats(path=str(p), mu=mu, sigma=sigma, recorded_protocol="protocol" in small)
    if "num_images" in small:
        ref.num_images = int(small["num_images"])
    if "protocol" in small:
        try:
            ref.protocol = json.loads(str(small["protocol"]))
        except ValueError:
            ref.protocol = {}
    with zipfile.ZipFile(p) as zf:
        has_features = "class_features.npy" in zf.namelist()
    if "class_offsets" in small and has_features:
        ref.class_offsets = np.asarray(small["class_offsets"], np.int64)
        feats = npz_member_memmap(p, "class_features")
        if feats is None:
            with np.load(p, allow_pickle=False) as f:
                feats = f["class_features"]
        if feats.ndim != 2 or feats.shape[1] != expected_dim or len(feats) != ref.class_offsets[-1]:
            raise UserError(f"{p}: class_features {feats.shape} do not match class_offsets / {expected_dim}-d; "
                            "recreate the file with `evaluate.py stats`")
        _check_finite(p, "class_features", feats)
        ref._class_features = feats
        if "class_names" in small:
            ref.class_names = [str(s) for s in small["class_names"]]
    return ref


def informative_names(names: Sequence[str] | None) -> list[str] | None:
    """The names as strings, or None when absent or only the indices as strings."""
    if names is None or len(names) == 0:
        return None
    names = [str(n) for n in names]
    return None if names == [str(c) for c in range(len(names))] else names
