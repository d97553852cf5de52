"""Drawing images from a generator: latents, labels, truncation, batching, uint8 quantisation.

Shared by ``sample.py``, ``evaluate.py metrics --checkpoint`` and the training loop's sample grids.
Every latent is drawn up front from one seeded CPU generator, so the same seed gives the same latents
and labels whatever the batch size or device. G runs in eval mode with the batch-norm statistics its
``bn_stats`` mode names (:mod:`sagan.sampling.bn_stats`; running statistics unless set otherwise), so that with
running or standing statistics each image is independent of the others in its batch. Pixels are
bit-identical for the same batch size and device in every mode; across batch sizes, batched conv/GEMM
kernels sum in a shape-dependent order (differences ~1e-7), which moves the rare value that sits on a
rounding boundary by one uint8 level (about 1 in 10^5 values), never more; with per-batch statistics
(``batch``) the images depend on the batch size itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from .bn_stats import sampling_mode
from ..errors import UserError
from ..io import (TEMP_SUFFIX, atomic_write, check_free_space, disk_full_error, is_disk_full, open_memmap_reserved,
                  printable, sweep_stale_temp_files, temp_prefix, write_text_atomic)
from .latents import sample_latents
from .viz import save_png


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images (B, 3, H, W) -> uint8 (B, H, W, 3), rounded as PNG saving would (x*255 + 0.5, floor)."""
    x = (x.float() + 1) * 127.5
    return x.add_(0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


@torch.inference_mode()
def generate(
    G: torch.nn.Module,
    z: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images, labels)`` batches: images uint8 (B, H, W, 3) on CPU, from G in eval mode with
    the BN statistics of its mode (``sagan.sampling.bn_stats.prepare_generator``; running statistics if unset).

    ``labels`` are class indices (N,), or soft class weights (N, num_classes) for class interpolation.
    """
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")
    device = torch.device(device) if device is not None else next(G.parameters()).device
    with sampling_mode(G):
        for i in range(0, len(z), batch_size):
            zb = z[i : i + batch_size].to(device)
            yb = labels[i : i + batch_size].to(device)
            yield to_uint8(G(zb, yb)).cpu(), labels[i : i + batch_size]


# --------------------------------------------------------------------------------------------------
# class selection


def parse_classes(spec: str | None, num_classes: int) -> list[int] | None:
    """``"1,7,207"`` or ranges ``"0-9,207"`` -> class indices, checked against ``num_classes``."""
    if spec is None or not spec.strip():
        return None
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                out.extend(range(lo_i, hi_i + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise UserError(f"--classes {spec!r}: cannot read {part!r}; use indices and ranges like 1,7,200-205") from None
    if num_classes == 0:
        raise UserError(f"--classes {spec!r}: this model is unconditional (model.num_classes 0); drop --classes")
    bad = [c for c in out if not 0 <= c < num_classes]
    if bad:
        raise UserError(f"--classes {spec!r}: class {bad[0]} is out of range; this model has classes 0-{num_classes - 1}")
    return out


def spread_classes(num_classes: int, n: int = 10) -> list[int]:
    """Up to ``n`` evenly spaced classes (all of them when there are few); for an unconditional model
    (``num_classes`` 0) ``n`` rows of label 0."""
    if num_classes == 0:
        return [0] * n
    if num_classes <= n:
        return list(range(num_classes))
    if n == 1:  # one class: the first (the spacing below would divide by zero)
        return [0]
    return [round(i * (num_classes - 1) / (n - 1)) for i in range(n)]


# --------------------------------------------------------------------------------------------------
# interpolation


def interpolation_inputs(z_dim: int, num_classes: int, classes: Sequence[int], steps: int, seed: int, truncation: float | None = None):
    """Latents and soft class weights for an interpolation figure, one row per entry of ``classes``:

    - rows ``2i``: z moves linearly between two draws, class ``classes[i]`` fixed;
    - rows ``2i + 1``: z fixed, the class conditioning moves linearly from ``classes[i]`` to the next
      class in the list (G mixes its class embeddings, see ``sagan.models.layers.embed``).

    Returns ``z`` (rows * steps, z_dim), ``y`` (rows * steps, num_classes) and per row the classes
    ``(from, to)`` (equal for the z rows). An unconditional model (``num_classes`` 0) has only the z rows,
    with labels 0.
    """
    t = torch.linspace(0, 1, steps)[:, None]
    ends = sample_latents(2 * len(classes), z_dim, seed, truncation)
    if num_classes == 0:
        zs = [(1 - t) * ends[2 * i] + t * ends[2 * i + 1] for i in range(len(classes))]
        return torch.cat(zs), torch.zeros(len(classes) * steps, dtype=torch.long), [(0, 0)] * len(classes)
    eye = torch.eye(num_classes)
    zs, ys, rows = [], [], []
    for i, c in enumerate(classes):
        za, zb = ends[2 * i], ends[2 * i + 1]
        nxt = classes[(i + 1) % len(classes)]
        zs += [(1 - t) * za + t * zb, za.expand(steps, -1)]
        ys += [eye[c].expand(steps, -1), (1 - t) * eye[c] + t * eye[nxt]]
        rows += [(c, c), (c, nxt)]
    return torch.cat(zs), torch.cat(ys), rows


# --------------------------------------------------------------------------------------------------
# writing many samples


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
