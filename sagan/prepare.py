"""Pack a class-per-folder image tree (e.g. ImageNet train) into the packed format of sagan.data.packed.

Every image is decoded with PIL, EXIF-rotated, converted to RGB, centre-cropped to a square and
resized with PIL's antialiased Lanczos filter (see sagan.data.images), then written as uint8 into a
preallocated memory-mapped ``images.npy``: ImageNet at 128px is ~63 GB and never sits in RAM.

Work is split into chunks of ``chunk_size`` consecutive slots. Worker processes decode a chunk, write
it straight into the memory maps, flush, and return its SHA-256; the main process then appends the
chunk to ``progress.jsonl``. A re-run after an interruption reads that file and only does the chunks
that are missing. ``manifest.json`` is written last (temp file + ``os.replace``) and marks the folder
complete; its checksum is the SHA-256 of the per-chunk digests in order, so it is computed while
packing at no extra read of the output.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import click
import numpy as np
import PIL
from tqdm import tqdm

from .data.images import DRAFT_GAP, ImageDecodeError, list_class_tree, load_image
from .data.packed import FORMAT, IMAGES, LABELS, MANIFEST, PROGRESS, SKIPPED
from .errors import UserError, report_user_errors
from .io import write_text_atomic

CHUNK_SIZE = 256  # slots per unit of work and of resume: 12 MB at 128px


# --------------------------------------------------------------------------------------------------
# worker side: one chunk = decode, write into the memory maps, flush, hash

_worker: dict = {}


def _init_worker(source: str, out: str, resolution: int) -> None:
    _worker.clear()
    _worker.update(source=Path(source), resolution=resolution,
                   images=np.load(Path(out) / IMAGES, mmap_mode="r+"),
                   labels=np.load(Path(out) / LABELS, mmap_mode="r+"))


def _init_pool_worker(*args) -> None:
    # Ctrl-C reaches the whole process group: let only the main process handle it (it terminates the
    # pool), instead of every worker printing its own KeyboardInterrupt traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _init_worker(*args)


def _pack_chunk(task: tuple[int, int, list[tuple[str, int]]]) -> dict:
    """Decode the files of one chunk into slots ``start..``; skipped files leave zeros and label -1."""
    chunk, start, items = task
    r = _worker["resolution"]
    images = np.zeros((len(items), r, r, 3), np.uint8)
    labels = np.full(len(items), -1, np.int64)
    skipped = []
    for i, (rel, label) in enumerate(items):
        try:
            images[i] = load_image(_worker["source"] / rel, r)
            labels[i] = label
        except ImageDecodeError as e:
            skipped.append([rel, str(e)])
    end = start + len(items)
    _worker["images"][start:end] = images
    _worker["labels"][start:end] = labels
    _worker["images"].flush()  # msync: on disk before the main process records the chunk as done
    _worker["labels"].flush()
    digest = hashlib.sha256(images.tobytes())
    digest.update(labels.tobytes())
    return {"chunk": chunk, "size": len(items), "sha256": digest.hexdigest(), "skipped": skipped}


# --------------------------------------------------------------------------------------------------
# main side


def _files_digest(files: list[tuple[str, int]]) -> str:
    h = hashlib.sha256()
    for rel, label in files:
        h.update(f"{label}\t{rel}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


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


def _check_out(source: Path, out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the packed dataset")
    src, dst = source.resolve(), out.resolve()
    if dst == src or src in dst.parents:
        raise UserError(f"--out {out} is inside --source {source}; it would become a class folder, write elsewhere")


def _check_disk(out: Path, needed: int) -> None:
    free = shutil.disk_usage(out).free
    if free < needed:
        raise UserError(f"{out}: the packed dataset needs {needed / 1e9:.1f} GB but only {free / 1e9:.1f} GB are "
                        f"free; free space or choose another --out")


def pack(source: str | Path, out: str | Path, resolution: int = 128, workers: int | None = None,
         chunk_size: int = CHUNK_SIZE, progress: bool = True) -> dict:
    """Pack the tree at ``source`` into ``out`` at ``resolution`` px; returns the manifest.

    ``workers``: decoding processes (default: all CPUs; 0 = in this process). Resumes an interrupted run
    with the same source, resolution and chunk size; returns at once if ``out`` is already complete.
    """
    source, out = Path(source).expanduser(), Path(out).expanduser()
    if not source.is_dir():
        raise UserError(f"--source {source} {'is not a folder' if source.exists() else 'does not exist'}; give a "
                        f"class-per-folder tree such as ImageNet's train/")
    if resolution < 4:
        raise UserError(f"--resolution {resolution} is too small; use e.g. 128")
    if chunk_size < 1:
        raise UserError(f"--chunk-size {chunk_size} must be >= 1")
    _check_out(source, out)
    classes, files = list_class_tree(source)
    n, r = len(files), resolution
    num_chunks = -(-n // chunk_size)
    header = {"format": FORMAT, "source": str(source.resolve()), "resolution": r, "chunk_size": chunk_size,
              "num_slots": n, "files_sha256": _files_digest(files)}
    out.mkdir(parents=True, exist_ok=True)

    if (out / MANIFEST).is_file():
        try:
            manifest = json.loads((out / MANIFEST).read_text())
        except ValueError:
            raise UserError(f"{out / MANIFEST} is not valid JSON; delete {out} and pack again") from None
        if all(manifest.get(k) == v for k, v in header.items()):
            (out / PROGRESS).unlink(missing_ok=True)
            return manifest
        raise UserError(f"--out {out} already holds a packed dataset of {manifest.get('source')} at "
                        f"{manifest.get('resolution')}px; choose another --out or delete that folder")

    done = _read_progress(out / PROGRESS, header, num_chunks, chunk_size, n)
    if done is None or not (out / IMAGES).is_file() or not (out / LABELS).is_file():
        done = {}
        for name in (PROGRESS, SKIPPED, IMAGES, LABELS):
            (out / name).unlink(missing_ok=True)
        _check_disk(out, n * (r * r * 3 + 8))
        # open_memmap writes the .npy header and extends the file sparsely: no 63 GB of zeros written now
        for name, dtype, shape in ((IMAGES, np.uint8, (n, r, r, 3)), (LABELS, np.int64, (n,))):
            array = np.lib.format.open_memmap(out / name, mode="w+", dtype=dtype, shape=shape)
            array.flush()
            del array
    # (re)write the progress file with only well-formed records, then append as chunks finish
    write_text_atomic(out / PROGRESS, "".join(json.dumps(x) + "\n" for x in [header, *done.values()]))

    tasks = [(k, k * chunk_size, files[k * chunk_size:(k + 1) * chunk_size]) for k in range(num_chunks) if k not in done]
    workers = (os.cpu_count() or 1) if workers is None else workers
    init_args = (str(source), str(out), r)
    bar = tqdm(total=n, initial=sum(rec["size"] for rec in done.values()), unit="img", disable=not progress,
               desc=f"packing {source.name} at {r}px", smoothing=0.05)
    num_skipped = sum(len(rec["skipped"]) for rec in done.values())
    try:
        with open(out / PROGRESS, "a") as log:
            if workers > 0 and len(tasks) > 1:
                pool = multiprocessing.get_context().Pool(min(workers, len(tasks)), _init_pool_worker, init_args)
                results = pool.imap_unordered(_pack_chunk, tasks)
            else:
                pool = None
                _init_worker(*init_args)
                results = map(_pack_chunk, tasks)
            try:
                for rec in results:
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                    os.fsync(log.fileno())
                    done[rec["chunk"]] = rec
                    bar.update(rec["size"])
                    num_skipped += len(rec["skipped"])
                    bar.set_postfix(skipped=num_skipped, refresh=False)
            finally:
                if pool is not None:
                    pool.terminate()  # also on Ctrl-C: the recorded chunks stay valid for the next run
                    pool.join()
                _worker.clear()
    finally:
        bar.close()
    return _finish(out, header, classes, done, num_chunks)


def _finish(out: Path, header: dict, classes: list[str], done: dict[int, dict], num_chunks: int) -> dict:
    """All chunks done: write the skipped-files report, then the manifest (the completeness marker)."""
    skipped = [s for k in range(num_chunks) for s in done[k]["skipped"]]
    write_text_atomic(out / SKIPPED, "".join(f"{rel}\t{reason}\n" for rel, reason in skipped))
    labels = np.load(out / LABELS, mmap_mode="r")
    counts = np.bincount(np.asarray(labels[labels >= 0]), minlength=len(classes))
    checksum = hashlib.sha256("".join(done[k]["sha256"] for k in range(num_chunks)).encode()).hexdigest()
    manifest = {
        **header,
        "num_classes": len(classes),
        "num_images": int(counts.sum()),
        "num_skipped": len(skipped),
        "classes": classes,
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
    line = (f"packed {manifest['num_images']} images of {manifest['num_classes']} classes at "
            f"{manifest['resolution']}px into {out} ({size_gb:.2f} GB); skipped {manifest['num_skipped']} "
            f"unreadable file(s)")
    if manifest["num_skipped"]:
        line += f", listed in {out / SKIPPED}"
    empty = [c for c, k in zip(manifest["classes"], manifest["class_counts"]) if k == 0]
    if empty:
        line += f"; warning: no readable images in class(es) {', '.join(empty[:5])}"
    return line


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--source", required=True, help="Class-per-folder tree: SOURCE/<class>/**/<image>.")
@click.option("--out", required=True, help="Folder to write the packed dataset to.")
@click.option("--resolution", default=128, show_default=True, type=int, help="Output size in px (square).")
@click.option("--workers", default=None, type=int, help="Decoding processes [default: all CPUs].")
@click.option("--chunk-size", default=CHUNK_SIZE, show_default=True, type=int,
              help="Images per unit of work and of resume.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@report_user_errors
def main(source, out, resolution, workers, chunk_size, quiet):
    """Pack a class-per-folder image tree for fast training.

    \b
    Examples:
      python -m sagan.prepare --source ~/imagenet/train --out ~/data/imagenet128 --resolution 128
      sagan-prepare --source ./my_images --out ./data/mine64 --resolution 64 --workers 8

    Class k is the k-th folder name in sorted order (torchvision ImageFolder's). Images are
    EXIF-rotated, converted to RGB, centre-cropped and resized with antialiased Lanczos; files that
    cannot be decoded are skipped and listed in OUT/skipped.txt. An interrupted run resumes where it
    stopped when run again with the same options; OUT/manifest.json is written last.
    """
    try:
        manifest = pack(source, out, resolution, workers=workers, chunk_size=chunk_size, progress=not quiet)
    except KeyboardInterrupt:
        click.echo(f"interrupted: the finished chunks are kept in {Path(out) / PROGRESS}; run the same command "
                   f"again to resume", err=True)
        sys.exit(130)
    click.echo(summary(manifest, Path(out)))


if __name__ == "__main__":
    main()
