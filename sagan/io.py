"""Writing files safely: atomically, with the user's umask, with space reserved up front, and with
one-line errors when the disk is full or the location is not writable.

Every file the product writes for others to read (checkpoints, PNGs, reports, manifests, sample sets,
reference statistics) goes through :func:`atomic_write`: a fresh temp file in the target's directory
(same file system, so the rename is atomic; created with ``O_EXCL``, so a stale temp file left by a
killed process is never written through), fsync'ed, given the mode the umask asks for (``mkstemp``
creates 0600), then ``os.replace``d over the target. A crash or Ctrl-C mid-write leaves the previous
file intact and no half-written one (PITFALLS: accelerate's ``save_state`` writes in place); the temp
file is removed on any error, and :func:`sweep_temp_files` removes those a ``kill -9`` left behind.

Disk full. A write that runs out of space raises :class:`DiskFullError` (a one-line :class:`UserError`
naming the path and the space needed) instead of an ``OSError`` traceback. Large outputs reserve their
space before writing (:func:`reserve_space`, ``posix_fallocate``): a memory-mapped file whose pages
have no disk blocks behind them kills the process with SIGBUS when the disk fills, so
:func:`open_memmap_reserved` allocates every block before the first write.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import IO, Callable, Iterator

import numpy as np

from .errors import UserError

TEMP_SUFFIX = ".tmp"
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_umask_lock = threading.Lock()
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(name: str | os.PathLike) -> str:
    """A file name (or any text holding one) as plain text: bytes that are not UTF-8 become ``\\xNN``,
    control characters too.

    Names on Linux are bytes; Python hands undecodable ones over as lone surrogates, which crash any
    UTF-8 write (a report, a log, a print). Escaped like ``repr`` does, a name stays readable and one
    line (a tab or newline in a name would split a ``path<TAB>reason`` record).
    """
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class DiskFullError(UserError):
    """Not enough space for an output file; nothing partial is left behind."""


class NotWritableError(UserError):
    """An output location that cannot be created or written to."""


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def free_bytes(path: str | os.PathLike) -> int:
    """Free space (for this user) on the file system holding ``path`` or its nearest existing parent."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def disk_full_error(path: str | os.PathLike, needed: int | None = None) -> DiskFullError:
    need = f", about {human_bytes(needed)} needed" if needed else ""
    return DiskFullError(f"cannot write {path}: disk full ({human_bytes(free_bytes(Path(path).parent))} free{need}); "
                         "free some space or write elsewhere")


def is_disk_full(e: BaseException) -> bool:
    if isinstance(e, OSError):
        return e.errno in DISK_FULL_ERRNOS
    # torch.save's C++ zip writer reports a failed write as a RuntimeError ("file write failed",
    # "unexpected pos"); the OSError behind it is lost, so the message is all there is
    text = str(e)
    return isinstance(e, RuntimeError) and ("write failed" in text or "unexpected pos" in text)


def check_free_space(path: str | os.PathLike, needed: int, what: str = "the output") -> None:
    """Refuse long work up front when ``needed`` bytes will not fit next to ``path``."""
    free = free_bytes(Path(path).parent if not Path(path).is_dir() else path)
    if free < needed:
        raise DiskFullError(f"{what} {path} needs about {human_bytes(needed)} but only {human_bytes(free)} are free; "
                            "free some space or write elsewhere")


@contextlib.contextmanager
def new_folders_removed_on_error(folder: str | os.PathLike) -> Iterator[None]:
    """The folders from ``folder`` up that do not exist yet are removed again, where still empty, when the
    block fails: a refused command leaves no empty output folders behind (``refs/``, ``eval/``)."""
    missing, p = [], Path(folder).absolute()
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    try:
        yield
    except BaseException:
        for d in missing:  # deepest first; stops at the first folder something was written into
            try:
                d.rmdir()
            except OSError:
                break
        raise


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold ``path`` (a lock file, created if needed) exclusively for the block: a second process gets a
    one-line :class:`UserError` naming the folder and the holder's pid (written into the file).

    ``fcntl.flock``: the kernel releases it when the holder exits in any way, ``kill -9`` included, so a
    stale lock file never blocks anyone. ``what`` names the option, e.g. ``--out``. The file is removed
    on a normal exit. File systems without flock (some network mounts) run unlocked.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~current_umask())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise UserError(f"{what} {printable(path.parent)} is in use by another process (pid {holder}); wait for "
                            f"it to finish, or pick another {what}") from None
        except OSError:  # no flock here: run unlocked rather than not at all
            break
        try:  # a holder that just finished may have removed the file we opened: lock the new one
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def check_writable(folder: str | os.PathLike, what: str) -> Path:
    """Create ``folder`` if needed and prove it writable with a probe file, before any long work."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", suffix=TEMP_SUFFIX, dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        if e.errno in DISK_FULL_ERRNOS:
            raise disk_full_error(folder / "x") from None
        raise NotWritableError(f"{what} {folder} is not writable ({e.strerror or e}); pick another location "
                               "or fix its permissions") from None
    return folder


def check_replaceable(path: str | os.PathLike, is_ours: Callable[[Path], bool], overwrite: bool,
                      option: str = "--out") -> None:
    """Refuse to replace an existing file that this program did not write (``is_ours`` says) unless
    ``overwrite``: a typo'd ``--out`` must not destroy a user's file, whatever its suffix."""
    path = Path(path)
    if overwrite or not (path.exists() or path.is_symlink()):
        return
    if path.is_symlink() or not path.is_file() or not is_ours(path):
        raise UserError(f"{option} {printable(path)} already exists and was not written by sagan; pass --overwrite "
                        "to replace it, or pick another name")


def progress_disable(enabled: bool = True) -> bool | None:
    """tqdm's ``disable``: off when not wanted, and (None) off where stderr is not a terminal, so that no
    bar frames interleave with the log lines of a command whose output goes to a file."""
    return None if enabled else True


def current_umask() -> int:
    with _umask_lock:  # os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def reserve_space(fd: int, nbytes: int, path: str | os.PathLike = "") -> None:
    """Allocate disk blocks for the first ``nbytes`` of the open file ``fd`` (ENOSPC now, not mid-write).

    ``posix_fallocate`` where the file system has it, else writing zeros into the holes (same result,
    slower); existing data is kept either way.
    """
    if nbytes <= 0:
        return
    try:
        os.posix_fallocate(fd, 0, nbytes)
        return
    except OSError as e:
        if e.errno in DISK_FULL_ERRNOS:
            raise disk_full_error(path, nbytes) from None
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    except AttributeError:  # no posix_fallocate on this platform
        pass
    size = os.fstat(fd).st_size
    chunk = b"\0" * (1 << 20)
    try:
        pos = size
        while pos < nbytes:
            n = os.pwrite(fd, chunk[: min(len(chunk), nbytes - pos)], pos)
            pos += n
        os.fsync(fd)
    except OSError as e:
        if e.errno in DISK_FULL_ERRNOS:
            raise disk_full_error(path, nbytes) from None
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", durable: bool = True,
                 reserve: int | None = None) -> Iterator[IO]:
    """``with atomic_write(p) as f: ...`` writes ``p`` all at once when the block succeeds.

    ``durable=False`` skips the fsyncs (still all-or-nothing, but a power cut may lose the file): for
    bulk outputs such as 50k sample PNGs, where fsync would dominate the time. ``reserve``: bytes to
    allocate before writing (binary mode), so a full disk fails at once; the file is cut to what was
    written at the end. Disk-full errors become a one-line :class:`DiskFullError`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as e:
        if e.errno in DISK_FULL_ERRNOS:
            raise disk_full_error(path, reserve) from None
        raise NotWritableError(f"cannot write {path} ({e.strerror or e}); pick another location or fix its "
                               "permissions") from None
    try:
        with os.fdopen(fd, mode) as f:
            if reserve:
                reserve_space(fd, reserve, path)
            yield f
            f.flush()
            if reserve:
                f.truncate(f.tell())
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp's 0600 would hide shared outputs from others
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if is_disk_full(e):
            raise disk_full_error(path, reserve) from None
        raise
    if durable:
        _fsync_dir(path.parent)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_write(path, "w") as f:
        f.write(text)
    return Path(path)


def link_atomic(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Make ``dst`` the same file as ``src`` atomically: a hard link under a fresh temp name, renamed over
    ``dst`` (no second multi-GB write); a copy where hard links are not possible. The temp name is
    created new every time, so a link leaked by a killed process is never written through."""
    src, dst = Path(src), Path(dst)
    for attempt in range(100):
        tmp = dst.with_name(f"{temp_prefix(dst)}{os.urandom(4).hex()}{TEMP_SUFFIX}")
        try:
            os.link(src, tmp)
            break
        except FileExistsError:
            continue
        except OSError:  # no hard links here (some network/FAT file systems): a full, atomic copy
            with open(src, "rb") as fsrc, atomic_write(dst) as fdst:
                shutil.copyfileobj(fsrc, fdst, 1 << 20)
            return
    else:
        raise RuntimeError(f"could not find a free temp name next to {dst}")
    try:
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def temp_prefix(target: str | os.PathLike) -> str:
    """Start of the name of a temp file or folder for ``target``: ``.<name>.<pid>.`` (the writer's pid lets
    a later writer tell a killed process's leftovers from a live one's, :func:`sweep_stale_temp_files`)."""
    return f".{Path(target).name}.{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_stale_temp_files(target: str | os.PathLike) -> list[Path]:
    """Remove the temp files and folders that killed writers of ``target`` left beside it (``kill -9``
    mid-write: a sample set's full-size temp folder). Only those whose writer is gone: a live process
    writing the same target keeps its own."""
    target = Path(target)
    pattern = re.compile(re.escape(f".{target.name}.") + r"(\d+)\..*" + re.escape(TEMP_SUFFIX) + "$")
    stale = []
    if target.parent.is_dir():
        for p in target.parent.iterdir():
            m = pattern.match(p.name)
            if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
                stale.append(p.name)
    return sweep_temp_files(target.parent, None, only=stale) if stale else []


def sweep_temp_files(folder: str | os.PathLike, names: tuple[str, ...] | None = None,
                     only: list[str] | None = None) -> list[Path]:
    """Remove the temp files (``.<name>.*.tmp``) that killed writers left in ``folder``; returns them.
    ``names``: only those of these target names (a folder other programs also write into); ``only``:
    exactly these entries.

    Call only where no other process is writing these targets (a run directory at start-up)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    patterns = [f".{n}.*{TEMP_SUFFIX}" for n in names] if names is not None else [f".*{TEMP_SUFFIX}"]
    found = [folder / n for n in only] if only is not None else [p for pat in patterns for p in folder.glob(pat)]
    removed = []
    for p in found:
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def open_memmap_reserved(path: str | os.PathLike, dtype, shape: tuple[int, ...]) -> np.memmap:
    """A new ``.npy`` file mapped for writing, with all of its disk blocks allocated first.

    ``np.lib.format.open_memmap`` alone makes a sparse file: a write into a page with no block behind it
    on a full disk is a SIGBUS ("Bus error"), not an exception. On failure the file is removed and a
    :class:`DiskFullError` names it."""
    path = Path(path)
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    check_free_space(path, nbytes, "the file")
    try:
        array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        fd = os.open(path, os.O_RDWR)
        try:
            reserve_space(fd, os.fstat(fd).st_size, path)
        finally:
            os.close(fd)
    except BaseException as e:
        path.unlink(missing_ok=True)
        if is_disk_full(e):
            raise disk_full_error(path, nbytes) from None
        raise
    return array


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
