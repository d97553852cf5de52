"""Atomic file writes: readers see the old file or the whole new one, never a part.

Every file the product writes for others to read (checkpoints, PNGs, reports, manifests, sample sets,
reference statistics) goes through :func:`atomic_write`: a temp file in the target's directory (same
file system, so the rename is atomic), fsync'ed, then ``os.replace``d over the target. A crash or
Ctrl-C mid-write leaves the previous file intact and no half-written one (PITFALLS: accelerate's
``save_state`` writes in place).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", durable: bool = True) -> Iterator[IO]:
    """``with atomic_write(p) as f: ...`` writes ``p`` all at once when the block succeeds.

    ``durable=False`` skips the fsyncs (still all-or-nothing, but a power cut may lose the file): for
    bulk outputs such as 50k sample PNGs, where fsync would dominate the time.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_write(path, "w") as f:
        f.write(text)
    return Path(path)


def _fsync_dir(d: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
