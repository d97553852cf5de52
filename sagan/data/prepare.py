"""Pack any dataset folder sagan reads (a class-per-folder tree such as ImageNet train, a flat folder,
CIFAR, a Hugging Face dataset: see sagan.data.formats) into the packed format of sagan.data.formats.packed.
This is the library; its command line, ``sagan-prepare``, is :mod:`sagan.commands.prepare`.

The source's format lists its images (a :class:`~sagan.data.formats.source.Source`); every image is
decoded with PIL, EXIF-rotated, converted to RGB, centre-cropped to a square and resized with PIL's
antialiased Lanczos filter (see sagan.data.images), then written as uint8 into a preallocated
``images.npy``: ImageNet at 128px is ~63 GB and never sits in RAM.

Work is split into chunks of ``chunk_size`` consecutive slots. Worker processes decode a chunk, write
it into the arrays' files, sync, and return its SHA-256; the main process then appends the chunk to
``progress.jsonl``. A re-run after an interruption reads that file and only does the chunks that are
missing. ``manifest.json`` is written last (temp file + ``os.replace``) and marks the folder complete;
its checksum is the SHA-256 of the per-chunk digests in order, so it is computed while packing at no
extra read of the output.

A full disk is a one-line error, never a crash: the space is checked and the arrays' disk blocks are
allocated before any decoding (a memory-mapped write into a page without a block is a SIGBUS), chunks
are written with ``pwrite`` (ENOSPC, not SIGBUS, on copy-on-write file systems), and a worker that dies
anyway (the OOM killer) is reported with its signal instead of being waited for.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import PIL.Image
from tqdm import tqdm

from ..config import MIN_RESOLUTION, resolution_problem
from ..errors import UserError
from ..io import (DiskFullError, atomic_write, check_free_space, check_writable, exclusive_lock, free_bytes,
                  human_bytes, is_disk_full, printable, progress_disable, write_text_atomic)
from .formats import FormatOptions, find_format
from .formats.source import Source
from .images import DRAFT_GAP, ImageDecodeError, list_class_tree
from .formats.packed import FORMAT, IMAGES, LABELS, MANIFEST, PROGRESS, SKIPPED, SlotWriter, create_arrays, reopen_arrays
from .workers import run_in_processes

__all__ = ["CHUNK_SIZE", "DEFAULT_RESOLUTION", "list_class_tree", "pack", "summary"]

CHUNK_SIZE = 256  # slots per unit of work and of resume: 12 MB at 128px
DEFAULT_RESOLUTION = 128  # when no image of the source opens to read its size
LOCK_FILE = ".sagan-prepare.lock"  # held while a packer writes into --out (holder's pid inside)


# --------------------------------------------------------------------------------------------------
# worker side: one chunk = decode, write into the arrays' files (SlotWriter), hash

_worker: dict = {}


def _init_worker(reader, out: str, resolution: int) -> None:
    _close_worker()
    _worker.update(reader=reader, resolution=resolution, writer=SlotWriter(Path(out)))


def _close_worker() -> None:
    if "writer" in _worker:
        _worker["writer"].close()
    _worker.clear()


def _pack_chunk(task: tuple[int, int, list, list[int]]) -> dict:
    """Decode the items of one chunk into slots ``start..``; skipped items leave zeros and label -1."""
    chunk, start, items, item_labels = task
    r, reader = _worker["resolution"], _worker["reader"]
    images = np.zeros((len(items), r, r, 3), np.uint8)
    labels = np.full(len(items), -1, np.int64)
    skipped, small = [], []  # small: shorter sides of the images below r (upscaled)
    for i, (item, label) in enumerate(zip(items, item_labels)):
        try:
            images[i] = reader.load(item, r)
            labels[i] = label
        except ImageDecodeError as e:
            skipped.append([str(item), str(e)])
            continue
        side = reader.side(item)  # the header only
        if side is not None and side < r:
            small.append(side)
    _worker["writer"].write(start, images, labels)  # on disk before the main process records the chunk
    digest = hashlib.sha256(images.tobytes())
    digest.update(labels.tobytes())
    return {"chunk": chunk, "size": len(items), "sha256": digest.hexdigest(), "skipped": skipped,
            "upscaled": len(small), "smallest": min(small, default=None)}


# --------------------------------------------------------------------------------------------------
# main side


def _read_progress(path: Path, header: dict, num_chunks: int, chunk_size: int, num_files: int) -> dict[int, dict] | None:
    """Finished chunks recorded by an interrupted run with the same header, or None to start afresh."""
    if not path.is_file():
        return None
    lines = path.read_text(errors="replace").splitlines()
    try:
        if not lines or json.loads(lines[0]) != header:
            return None
    except ValueError:
        return None
    done = {}
    for line in lines[1:]:
        try:
            rec = json.loads(line)
            k = rec["chunk"]
            if 0 <= k < num_chunks and rec["size"] == min(chunk_size, num_files - k * chunk_size):
                done[k] = rec
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by the interruption: that chunk is simply done again
    return done


def _check_arguments(source: Path, resolution: int, workers: int | None, chunk_size: int) -> None:
    if not source.is_dir():
        raise UserError(f"--source {printable(source)} {'is not a folder' if source.exists() else 'does not exist'}; "
                        f"give a dataset folder: a class-per-folder tree such as ImageNet's train/, a flat folder "
                        f"of images, a CIFAR folder (cifar-10-batches-py) or a Hugging Face dataset")
    problem = resolution_problem(resolution) if resolution is not None else None  # training's rule: one rule
    if problem:
        raise UserError(f"--resolution {resolution}: model.resolution {problem}; training would refuse such a "
                        "dataset: pack at e.g. 64 or 128")
    if chunk_size < 1:
        raise UserError(f"--chunk-size {chunk_size} must be >= 1")
    if workers is not None and workers < 0:
        raise UserError(f"--workers {workers} must be >= 0 (0 = decode in this process)")


def _check_out(source: Path, out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {printable(out)} is a file; give a folder for the packed dataset")
    src, dst = source.resolve(), out.resolve()
    if dst == src or src in dst.parents:
        raise UserError(f"--out {printable(out)} is inside --source {printable(source)}; it would become a class "
                        f"folder, write elsewhere")


def _bytes_needed(n: int, r: int, num_chunks: int) -> int:
    # both arrays, each with its .npy header and a last partial block, then ~200 B of progress record
    # per chunk and a margin for the report and the manifest
    return n * (r * r * 3 + 8) + 2 * 4096 + 256 * num_chunks + 65536


def _remove(out: Path, *names: str) -> None:
    for name in names:
        (out / name).unlink(missing_ok=True)


def _open_outputs(out: Path, header: dict, num_chunks: int) -> dict[int, dict]:
    """The chunks an interrupted run finished, or {} and new arrays; disk blocks allocated either way."""
    n, r, chunk_size = header["num_slots"], header["resolution"], header["chunk_size"]
    done = _read_progress(out / PROGRESS, header, num_chunks, chunk_size, n)
    if done is not None and reopen_arrays(out, n, r):
        return done
    _remove(out, PROGRESS, SKIPPED, IMAGES, LABELS)
    check_free_space(out, _bytes_needed(n, r, num_chunks), "the packed dataset")
    create_arrays(out, n, r)
    return {}


def pack(source: str | Path, out: str | Path, resolution: int | None = None, workers: int | None = None,
         chunk_size: int = CHUNK_SIZE, progress: bool = True, split: str | None = None,
         labels: str | None = None) -> dict:
    """Pack the dataset folder at ``source`` (any format of sagan.data.formats) into ``out`` at
    ``resolution`` px (None: the source's image size, see :func:`source_resolution`); returns the
    manifest. One packer per ``out`` at a time (a lock file).

    ``workers``: decoding processes (default: all CPUs; 0 = in this process). ``split`` / ``labels``:
    choices within a CIFAR or Hugging Face folder. Resumes an interrupted run with the same source,
    resolution and chunk size; returns at once if ``out`` is already complete.
    """
    source, out = Path(source).expanduser(), Path(out).expanduser()
    _check_arguments(source, resolution, workers, chunk_size)
    _check_out(source, out)
    created = not out.exists()
    if not (out / MANIFEST).is_file():  # a complete dataset on a read-only disk may still be checked
        check_writable(out, "--out")  # before the listing, which takes minutes on ImageNet
    try:
        with exclusive_lock(out / LOCK_FILE, "--out"):  # a second packer would report a success it did not have
            return _pack(source=source, out=out, r=resolution,
                         workers=(os.cpu_count() or 1) if workers is None else workers, chunk_size=chunk_size,
                         progress=progress, options=FormatOptions(split=split, labels=labels))
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only if still empty: a failure before any output leaves nothing behind
        raise


def _complete_manifest(out: Path, header: dict) -> dict | None:
    """The manifest of ``out`` if it is this very dataset, None if ``out`` has none."""
    if not (out / MANIFEST).is_file():
        return None
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except ValueError:
        raise UserError(f"{printable(out / MANIFEST)} is not valid JSON; delete {printable(out)} and pack "
                        f"again") from None
    if all(manifest.get(k) == v for k, v in header.items()):
        if (out / PROGRESS).exists():
            (out / PROGRESS).unlink()
        return manifest
    raise UserError(f"--out {printable(out)} already holds a packed dataset of {manifest.get('source')} at "
                    f"{manifest.get('resolution')}px; choose another --out or delete that folder")


def open_source(source: Path, options: FormatOptions) -> tuple[str, Source]:
    """(format name, listing) of the dataset folder ``source``."""
    fmt, root = find_format(source)
    return fmt.name, fmt.open_source(root, options)


def source_resolution(src: Source, sample: int = 64) -> tuple[int | None, int | None]:
    """(the images' stored size, or the median shorter side of up to ``sample`` images spread over the
    source (headers only), the largest training resolution (power of two >= MIN_RESOLUTION) that does
    not upscale it); (None, None) when no image opens."""
    side = src.resolution
    if side is None:
        sides = [s for s in map(src.reader.side, src.items[:: max(1, len(src.items) // sample)][:sample])
                 if s is not None]
        if not sides:  # nothing opens: packing reports the undecodable files
            return None, None
        side = sorted(sides)[len(sides) // 2]
    r = MIN_RESOLUTION
    while r * 2 <= side:
        r *= 2
    return side, r


def _pack(source: Path, out: Path, r: int | None, workers: int, chunk_size: int, progress: bool,
          options: FormatOptions) -> dict:
    fmt_name, src = open_source(source, options)
    side, fitting = source_resolution(src)
    if r is None:
        r = fitting or DEFAULT_RESOLUTION
        if side is not None:
            print(f"resolution {r}px, from the source's images (median shorter side {side}px); pass --resolution "
                  "to choose another", file=sys.stderr)
    if side is not None and r > side:
        print(f"note: upscaling: the source's images are {side}px (median shorter side), packed at {r}px; a model "
              f"at {r}px is far larger than one at {fitting}px (--resolution {fitting})", file=sys.stderr)
    n = len(src.items)
    num_chunks = -(-n // chunk_size)
    # names go into JSON through printable(): the manifest is read by tools that print them
    header = {"format": FORMAT, "source": printable(source.resolve()), "resolution": r, "chunk_size": chunk_size,
              "num_slots": n, "files_sha256": src.fingerprint}
    manifest = _complete_manifest(out, header)
    if manifest is not None:
        return manifest
    done = _open_outputs(out, header, num_chunks)
    try:
        # (re)write the progress file with only well-formed records, then append as chunks finish
        write_text_atomic(out / PROGRESS, "".join(json.dumps(x) + "\n" for x in [header, *done.values()]))
        tasks = [(k, k * chunk_size, list(src.items[k * chunk_size:(k + 1) * chunk_size]),
                  src.labels[k * chunk_size:(k + 1) * chunk_size].tolist()) for k in range(num_chunks) if k not in done]
        _pack_tasks(source=source, out=out, r=r, tasks=tasks, workers=workers if src.parallel else 0, done=done,
                    progress=progress, reader=src.reader)
        about = {"source_format": fmt_name, "source_kind": src.what, **options.given()}
        return _finish(out=out, header=header, src=src, done=done, num_chunks=num_chunks, about=about)
    except (OSError, DiskFullError) as e:
        if isinstance(e, OSError) and not is_disk_full(e):
            raise
        if not done:  # not one chunk finished, in this run or before: nothing of value, give the space back
            _remove(out, PROGRESS, IMAGES, LABELS)
            kept = "nothing was kept; free some space or choose another --out"
        else:
            kept = (f"the {len(done)} finished chunk(s) are kept: free some space and run the same command again "
                    f"to resume, or delete {printable(out)}")
        raise DiskFullError(f"disk full while packing into {printable(out)} ({human_bytes(free_bytes(out))} free); "
                            f"{kept}") from None


def _pack_tasks(source: Path, out: Path, r: int, tasks: list, workers: int, done: dict[int, dict],
                progress: bool, reader) -> None:
    """Decode ``tasks``, recording each finished chunk in ``done`` and in the progress file."""
    done_size = sum(rec["size"] for rec in done.values())
    bar = tqdm(total=done_size + sum(len(t[2]) for t in tasks), initial=done_size, unit="img",
               disable=progress_disable(progress),
               desc=f"packing {printable(source.name)} at {r}px", smoothing=0.05)
    num_skipped = [sum(len(rec["skipped"]) for rec in done.values())]
    # json.dumps escapes every non-ASCII character (ensure_ascii): any file name fits this text file
    with bar, open(out / PROGRESS, "a") as log:
        def record(rec: dict) -> None:
            log.write(json.dumps(rec) + "\n")
            log.flush()
            os.fsync(log.fileno())
            done[rec["chunk"]] = rec
            num_skipped[0] += len(rec["skipped"])
            bar.update(rec["size"])
            bar.set_postfix(skipped=num_skipped[0], refresh=False)

        init_args = (reader, str(out), r)
        if workers > 0 and len(tasks) > 1:
            run_in_processes(_pack_chunk, tasks, workers, record, init=_init_worker, init_args=init_args,
                             close=_close_worker, what="a decoding worker",
                             advice="the finished chunks are kept: run the same command again to resume, with fewer "
                                    "--workers if memory is short")
            return
        _init_worker(*init_args)
        try:
            for task in tasks:
                record(_pack_chunk(task))
        finally:
            _close_worker()


def _write_report(path: Path, skipped: list) -> None:
    """``path<TAB>reason`` lines, UTF-8; names through printable() (one line each, whatever the bytes)."""
    text = "".join(f"{printable(rel)}\t{printable(reason)}\n" for rel, reason in skipped)
    with atomic_write(path) as f:
        f.write(text.encode("utf-8"))


def _finish(out: Path, header: dict, src: Source, done: dict[int, dict], num_chunks: int, about: dict) -> dict:
    """All chunks done: write the skipped-files report, then the manifest (the completeness marker)."""
    skipped = [s for k in range(num_chunks) for s in done[k]["skipped"]] + src.skipped
    _write_report(out / SKIPPED, skipped)
    labels = np.load(out / LABELS, mmap_mode="r")
    kept = np.asarray(labels[labels >= 0])
    counts = np.bincount(kept, minlength=len(src.classes))[:len(src.classes)]  # unlabelled: no classes, all 0
    if not kept.size:
        _remove(out, PROGRESS, IMAGES, LABELS)  # all zeros: keep only the report of why
        raise UserError(f"none of the {header['num_slots']} image files under {header['source']} could be decoded; "
                        f"{printable(out / SKIPPED)} lists why")
    checksum = hashlib.sha256("".join(done[k]["sha256"] for k in range(num_chunks)).encode()).hexdigest()
    manifest = {
        **header,
        **about,
        "num_classes": len(src.classes),
        "num_images": int(kept.size),
        "num_skipped": len(skipped),
        # images whose shorter side was below the resolution (upscaled), and the smallest such side; a chunk
        # recorded by an older packer before an interruption counts none
        "num_upscaled": sum(done[k].get("upscaled", 0) for k in range(num_chunks)),
        "smallest_side": min((done[k]["smallest"] for k in range(num_chunks) if done[k].get("smallest")), default=None),
        "classes": src.classes,
        "class_counts": counts.tolist(),
        "checksum": f"sha256:{checksum}",
        "checksum_method": "sha256 of the concatenated hex sha256 of each chunk's image bytes + label bytes",
        "layout": f"{IMAGES}: uint8 (num_slots, R, R, 3) RGB; {LABELS}: int64 (num_slots,), -1 = skipped file",
        "resize": f"EXIF transpose, RGB, centre crop to square, PIL Lanczos (JPEG draft while >= {DRAFT_GAP:g}x)",
        "pillow": PIL.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    (out / PROGRESS).unlink(missing_ok=True)
    return manifest


def summary(manifest: dict, out: Path) -> str:
    """One line for the user: what was packed and how many files were skipped."""
    size_gb = manifest["num_slots"] * (manifest["resolution"] ** 2 * 3 + 8) / 1e9
    unreadable = manifest["num_slots"] - manifest["num_images"]
    repeats = manifest["num_skipped"] - unreadable  # folders/files not listed twice (see scan_class_tree)
    what = f"of {manifest['num_classes']} classes" if manifest["num_classes"] else "(unlabelled)"
    line = (f"packed {manifest['num_images']} images {what} at {manifest['resolution']}px into {printable(out)} "
            f"({size_gb:.2f} GB); skipped {unreadable} "
            f"unreadable file(s)")
    if repeats:
        line += f" and {repeats} repeated folder(s)/file(s) (symlink loops, links to what was already listed)"
    if manifest["num_skipped"]:
        line += f", listed in {printable(out / SKIPPED)}"
    if manifest.get("num_upscaled"):
        line += (f"; note: {manifest['num_upscaled']} of the {manifest['num_images']} images were smaller than "
                 f"{manifest['resolution']}px and upscaled (the smallest {manifest['smallest_side']}px)")
    empty = [c for c, k in zip(manifest["classes"], manifest["class_counts"]) if k == 0]
    if empty:
        line += f"; warning: no readable images in class(es) {', '.join(empty[:5])}"
    return line
