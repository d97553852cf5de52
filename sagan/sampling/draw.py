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
import shutil
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
from ..io import (TEMP_SUFFIX, atomic_write, check_free_space, disk_full_error, is_disk_full,
                 open_memmap_reserved)
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
    check_free_space(path, needed, "the sample set")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # the .tmp suffix lets sagan.io.sweep_temp_files find a folder left by a killed process
        with tempfile.TemporaryDirectory(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent) as tmp:
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


def class_folder_names(names: Sequence[str] | None, num_classes: int) -> list[str]:
    """One folder name per class: its name when the checkpoint has names, else its index. Path
    separators are replaced, and a name shared by several classes (ImageNet's two "crane"s and two
    "maillot"s) gets the index appended, so that no two classes write into one folder. Decided over all
    classes, so a class's folder is the same whichever classes a run draws. An unconditional model
    (``num_classes`` 0) writes into the folder itself: ``[""]``."""
    if num_classes == 0:
        return [""]
    out = []
    for c in range(num_classes):
        name = str(names[c]).strip() if names and c < len(names) else ""
        out.append(name.replace("/", "_").replace("\\", "_") if name and name not in (".", "..") else str(c))
    counts = Counter(out)
    return [n if counts[n] == 1 else f"{n}_{c}" for c, n in enumerate(out)]


def write_png_folder(folder: str | Path, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                     folder_names: Sequence[str]) -> Path:
    """Stream ``(images, labels)`` batches into ``folder/<class>/<k>.png`` (k counts per class from 0).

    Each PNG is written atomically; if the run fails or is interrupted, the PNGs and class folders it
    wrote are removed again, so that no partial sample set is left to be mistaken for a whole one.
    """
    folder = Path(folder)
    counts: dict[int, int] = {}
    written: list[Path] = []
    try:
        for imgs, ys in batches:
            for img, c in zip(imgs.numpy(), ys.tolist()):
                k = counts.get(c, 0)
                png = folder / folder_names[c] / f"{k:06d}.png"
                written.append(png)
                # all-or-nothing per file, without an fsync per image (50k of them)
                save_png(Image.fromarray(img), png, durable=False)
                counts[c] = k + 1
    except BaseException:
        for png in written:
            png.unlink(missing_ok=True)
        for class_folder in {png.parent for png in written} - {folder}:
            with contextlib.suppress(OSError):  # only when empty: files that were there before stay
                class_folder.rmdir()
        raise
    return folder


def sample_folder_files(folder: str | Path) -> list[Path]:
    """The files of a folder ``write_png_folder`` wrote: PNGs (and temp files of interrupted writes) in
    class folders, or in the folder itself (an unconditional model's). Raises ``UserError`` naming the
    first entry that does not belong in such a folder, so that a mistyped ``--out ~/`` is never taken for
    a sample folder and cleared."""
    folder = Path(folder)
    files: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and not entry.is_symlink() and (entry.suffix.lower() == ".png" or entry.name.endswith(TEMP_SUFFIX)):
            files.append(entry)
            continue
        if entry.is_symlink() or not entry.is_dir():
            raise UserError(f"{folder} does not look like a sample folder (it holds {entry.name}, not only class "
                            "folders of PNGs); refusing to clear it; pick an empty or new folder")
        for f in sorted(entry.iterdir()):
            if f.is_symlink() or not f.is_file() or not (f.suffix.lower() == ".png" or f.name.endswith(TEMP_SUFFIX)):
                raise UserError(f"{folder} does not look like a sample folder (it holds {entry.name}/{f.name}, not "
                                "only PNGs in class folders); refusing to clear it; pick an empty or new folder")
            files.append(f)
    return files


def clear_sample_folder(folder: str | Path) -> None:
    """Empty a sample folder (checked with :func:`sample_folder_files` first), keeping the folder."""
    folder = Path(folder)
    sample_folder_files(folder)
    for entry in folder.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:  # an unconditional model's PNGs
            entry.unlink()
