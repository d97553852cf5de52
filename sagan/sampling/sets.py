"""Sample sets on disk: a ``.npz`` (pytorch-fid / torch-fidelity / the TF code's ``arr_0``) or a folder of
PNGs per class, written as they are drawn, with their disk space checked first and stale temp files swept.

Every folder sample.py fills holds a marker file (``MARKER``) listing the files it wrote: ``--overwrite``
deletes only those, and a folder without it is refused (a user's photo tree looks the same otherwise).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import UserError
from ..io import (TEMP_SUFFIX, atomic_write, check_free_space, disk_full_error, is_disk_full, open_memmap_reserved,
                  printable, sweep_stale_temp_files, temp_prefix, write_text_atomic)
from .viz import save_png


# upper bounds on the zip's own bytes (APPNOTE 4.3): per member a local header (30) and a central record
# (46) with zip64 extras (20 + 28), besides its name twice; at the end the zip64 end record and locator
# (56 + 20) and the classic end record (22)
ZIP_MEMBER_OVERHEAD, ZIP_END_OVERHEAD = 160, 200


def sample_set_bytes(num: int, resolution: int, to_dir: bool) -> int:
    """Disk space a sample set needs at its peak, as an upper bound.

    ``.npz``: the temp memory-mapped images plus the zip that copies them (2x the pixels). Folder: one
    PNG per image, at most its raw pixels plus filter bytes and chunk/deflate overhead (noise-like images
    barely compress), rounded up to whole 4 KB blocks as file systems store small files.
    """
    pixels = resolution * resolution * 3
    if to_dir:
        png = pixels + resolution + pixels // 4096 + 256
        return num * -(-png // 4096) * 4096
    return 2 * num * pixels + 16 * num + 64 * 1024


def write_npz(path: str | Path, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], num: int, resolution: int,
              extra: dict[str, np.ndarray] | None = None) -> Path:
    """Stream ``(images uint8 (B,H,W,3), labels)`` batches into ``path`` (.npz with ``images``, ``labels``).

    Images go into a memory-mapped .npy in a temp folder beside the target, which is then stored
    (uncompressed, so readers can memory-map it) into the zip without loading it, written atomically:
    50k x 128px never sits in memory, and an interrupted run leaves no partial ``path``. Free space is
    checked before the first batch is drawn and both files have their blocks reserved before they are
    written (a memory-mapped write into a sparse file on a full disk is a SIGBUS, not an error); a full
    disk is a one-line ``DiskFullError`` and leaves neither file behind.
    """
    path = Path(path)
    needed = sample_set_bytes(num, resolution, to_dir=False)
    sweep_stale_temp_files(path)  # a killed writer's full-size temp folder for this target
    check_free_space(path, needed, "the sample set")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # named like sagan.io's temp files (writer's pid, .tmp suffix): the next writer sweeps it if we are killed
        with tempfile.TemporaryDirectory(prefix=temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent) as tmp:
            tmp = Path(tmp)
            _write_npy_members(tmp, batches, num, resolution, extra)
            members = sorted(tmp.glob("*.npy"))
            zip_bytes = ZIP_END_OVERHEAD + sum(f.stat().st_size + ZIP_MEMBER_OVERHEAD + 2 * len(f.name) for f in members)
            with atomic_write(path, reserve=zip_bytes) as out, \
                    zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                for f in members:
                    zf.write(f, arcname=f.name)
    except OSError as e:
        if is_disk_full(e):
            raise disk_full_error(path, needed) from None
        raise
    return path


def _write_npy_members(tmp: Path, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], num: int, resolution: int,
                       extra: dict[str, np.ndarray] | None) -> None:
    """``images.npy`` (memory-mapped, blocks reserved first), ``labels.npy`` and one .npy per extra."""
    images = open_memmap_reserved(tmp / "images.npy", np.uint8, (num, resolution, resolution, 3))
    labels = np.empty(num, dtype=np.int64)
    i = 0
    for imgs, ys in batches:
        images[i : i + len(imgs)] = imgs.numpy()
        labels[i : i + len(ys)] = ys.numpy()
        i += len(imgs)
    if i != num:
        raise RuntimeError(f"write_npz: got {i} images, expected {num}")
    images.flush()
    del images
    np.save(tmp / "labels.npy", labels)
    for k, v in (extra or {}).items():
        np.save(tmp / f"{k}.npy", np.asarray(v), allow_pickle=False)


NAME_MAX = 255  # bytes in one file name (ext4, xfs, btrfs, tmpfs, APFS)


def _fit_name(name: str, suffix: str) -> str:
    """``name + suffix`` cut to at most NAME_MAX bytes, on a character boundary."""
    raw = os.fsencode(name)[: NAME_MAX - len(os.fsencode(suffix))]
    for cut in range(4):  # drop a UTF-8 sequence the cut split (at most 3 bytes)
        try:
            return raw[: len(raw) - cut].decode("utf-8") + suffix
        except UnicodeDecodeError:
            continue
    return os.fsdecode(raw) + suffix  # not UTF-8 in the first place: its bytes as they are


def class_folder_names(names: Sequence[str] | None, num_classes: int) -> list[str]:
    """One folder name per class: its name when the checkpoint has names, else its index. Path
    separators are replaced, and a name shared by several classes (ImageNet's two "crane"s and two
    "maillot"s) or too long for a file name (255 bytes) gets the index appended (cut to fit), so that no
    two classes write into one folder. Decided over all classes, so a class's folder is the same whichever
    classes a run draws. An unconditional model (``num_classes`` 0) writes into one folder, ``images``."""
    if num_classes == 0:
        return ["images"]
    out = []
    for c in range(num_classes):
        name = str(names[c]).strip() if names and c < len(names) else ""
        out.append(name.replace("/", "_").replace("\\", "_") if name and name not in (".", "..") else str(c))
    counts = Counter(out)
    fitted = [n if counts[n] == 1 and len(os.fsencode(n)) <= NAME_MAX else _fit_name(n, f"_{c}")
              for c, n in enumerate(out)]
    clash = [c for c, n in enumerate(fitted) if fitted.count(n) > 1]
    if clash:
        raise UserError(f"class {clash[0]} ({printable(out[clash[0]][:60])}...) gets the same folder name as another "
                        "class after shortening; give the checkpoint shorter class names")
    return fitted


MARKER = ".sagan-samples.json"  # in every folder sample.py fills: the files it wrote (what --overwrite may delete)
MARKER_FORMAT = "sagan-samples"


def _write_marker(folder: Path, files: Iterable[str]) -> None:
    write_text_atomic(folder / MARKER, json.dumps({"format": MARKER_FORMAT, "files": sorted(files)}) + "\n")


def write_png_folder(folder: str | Path, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                     folder_names: Sequence[str], labels: Sequence[int] | None = None) -> Path:
    """Stream ``(images, labels)`` batches into ``folder/<class>/<k>.png`` (k counts per class from 0).

    Each PNG is written atomically; if the run fails or is interrupted, the PNGs and class folders it
    wrote are removed again, so that no partial sample set is left to be mistaken for a whole one. The
    folder's :data:`MARKER` lists the files (all that ``labels`` plan before the first PNG, so that even a
    ``kill -9`` leaves a folder that ``--overwrite`` can clear; what was written at the end).
    """
    folder = Path(folder)
    counts: dict[int, int] = {}
    written: list[Path] = []
    if labels is not None:
        planned = Counter(int(c) for c in labels)
        _write_marker(folder, (f"{folder_names[c]}/{k:06d}.png" for c, n in planned.items() for k in range(n)))
    try:
        for imgs, ys in batches:
            for img, c in zip(imgs.numpy(), ys.tolist()):
                k = counts.get(c, 0)
                png = folder / folder_names[c] / f"{k:06d}.png"
                written.append(png)
                # all-or-nothing per file, without an fsync per image (50k of them)
                save_png(Image.fromarray(img), png, durable=False)
                counts[c] = k + 1
        _write_marker(folder, (p.relative_to(folder).as_posix() for p in written))
    except BaseException:
        for png in written:
            png.unlink(missing_ok=True)
        for class_folder in {png.parent for png in written}:
            with contextlib.suppress(OSError):  # only when empty: files that were there before stay
                class_folder.rmdir()
        (folder / MARKER).unlink(missing_ok=True)
        raise
    return folder


def _not_ours(folder: Path, why: str) -> UserError:
    return UserError(f"{folder} does not look like a sample folder sample.py wrote ({why}); refusing to clear it; "
                     "pick an empty or new folder")


def sample_folder_files(folder: str | Path) -> list[Path]:
    """The files that sample.py wrote into ``folder`` and that still exist, as its :data:`MARKER` lists them.
    A folder without a valid marker is refused (``UserError``) whatever its file names look like, so that
    a photo tree, a training set or a mistyped ``--out ~/`` is never cleared; a forged entry that leaves
    the folder is refused too."""
    folder = Path(folder)
    marker = folder / MARKER
    if marker.is_symlink() or not marker.is_file():
        raise _not_ours(folder, f"no {MARKER} listing its files")
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
        entries = record["files"] if record.get("format") == MARKER_FORMAT else None
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise ValueError
    except (ValueError, AttributeError, KeyError, TypeError, OSError):
        raise _not_ours(folder, f"its {MARKER} is damaged") from None
    root = folder.resolve()
    files = []
    for entry in entries:
        parts = Path(entry).parts
        path = folder / entry
        if Path(entry).is_absolute() or ".." in parts or len(parts) != 2 or path.parent.is_symlink() or \
                path.resolve().parent.parent != root:
            raise _not_ours(folder, f"its {MARKER} lists {printable(entry)[:80]}, outside its class folders")
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise _not_ours(folder, f"{printable(entry)[:80]} is not a file sample.py wrote")
        if path.is_file():
            files.append(path)
    return files


def clear_sample_folder(folder: str | Path) -> None:
    """Remove what sample.py wrote into ``folder`` (checked with :func:`sample_folder_files` first): the
    listed PNGs, temp files of their interrupted writes, class folders left empty, the marker. Anything
    else (a file the user added) stays."""
    folder = Path(folder)
    files = sample_folder_files(folder)
    for f in files:
        f.unlink()
    for class_folder in sorted({f.parent for f in files}):
        for tmp in class_folder.glob(f".*{TEMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                tmp.unlink()
        with contextlib.suppress(OSError):
            class_folder.rmdir()
    (folder / MARKER).unlink()
