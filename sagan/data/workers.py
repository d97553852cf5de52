"""A small process pool for long jobs that must notice a dead worker (the packer, ``sagan.data.prepare``).

Not ``multiprocessing.Pool``: when one of its workers is killed (SIGBUS on a full disk, the OOM killer)
it starts a new one and waits forever for the lost task. Here each worker gets one task at a time over
its own pipe, and the main process waits on the pipes and the process sentinels together, so a death is
seen at once and reported with its signal. Ctrl-C is the main process's alone: workers ignore SIGINT and
are terminated by the main process; a worker whose main process is gone exits by itself.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
from typing import Any, Callable, Iterable

from ..errors import UserError


def _worker_loop(conn, fn: Callable, init: Callable | None, init_args: tuple, close: Callable | None,
                 parent: int) -> None:
    """A worker process: answer each task from ``conn`` with ``(True, fn(task))`` or ``(False, error)``."""
    # Ctrl-C reaches the whole process group: only the main process handles it (it terminates the
    # workers), instead of every worker printing its own KeyboardInterrupt traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        if init is not None:
            init(*init_args)
        while True:
            while not conn.poll(1.0):
                if os.getppid() != parent:  # the main process was killed: do not linger as an orphan
                    return
            task = conn.recv()
            if task is None:
                return
            conn.send((True, fn(task)))
    except Exception as e:  # noqa: BLE001 - raised again in the main process (disk full -> one line)
        try:
            conn.send((False, e))
        except OSError:
            pass
        except Exception:  # noqa: BLE001 - an exception that cannot be pickled: send its text
            with contextlib.suppress(OSError):
                conn.send((False, RuntimeError(f"{type(e).__name__}: {e}")))
    finally:
        if close is not None:
            close()


def worker_died(proc, what: str, advice: str) -> UserError:
    proc.join(5)  # reap it, so that its exit code is known
    code = proc.exitcode or 0
    if code < 0 and -code in signal.valid_signals():
        hint = {signal.SIGKILL: ", the OOM killer?", signal.SIGBUS: ", a full disk?"}.get(-code, "")
        how = f"signal {-code}: {signal.Signals(-code).name}{hint}"
    else:
        how = f"exit code {code}"
    return UserError(f"{what} died ({how}); {advice}")


def run_in_processes(fn: Callable[[Any], Any], tasks: Iterable, workers: int, on_done: Callable[[Any], None], *,
                     init: Callable | None = None, init_args: tuple = (), close: Callable | None = None,
                     what: str = "a worker process", advice: str = "run again") -> None:
    """``fn(task)`` for every task in ``workers`` processes (``init(*init_args)`` first in each, ``close()``
    last); ``on_done(result)`` runs here as each task ends. A worker's exception is raised here; a dead
    worker is a one-line :class:`UserError` naming ``what`` died and how, then ``advice``."""
    tasks = list(tasks)
    ctx = multiprocessing.get_context()
    pending = iter(tasks)
    procs = {}  # our end of each worker's pipe -> its process

    def give_next(conn) -> bool:
        task = next(pending, None)
        try:
            conn.send(task)
        except OSError:  # its end is closed: it died
            raise worker_died(procs[conn], what, advice) from None
        return task is not None

    try:
        for _ in range(min(workers, len(tasks))):
            conn, child_end = ctx.Pipe()
            procs[conn] = ctx.Process(target=_worker_loop, daemon=True,
                                      args=(child_end, fn, init, init_args, close, os.getpid()))
            procs[conn].start()
            child_end.close()
            give_next(conn)
        busy = set(procs)
        while busy:
            ready = set(multiprocessing.connection.wait([*busy, *(procs[c].sentinel for c in busy)]))
            for conn in [c for c in busy if c in ready or procs[c].sentinel in ready]:
                try:
                    ok, payload = conn.recv() if conn.poll() else (None, None)
                except (EOFError, OSError):
                    ok = None
                if ok is None:  # the process ended without an answer
                    raise worker_died(procs[conn], what, advice)
                if not ok:
                    raise payload
                on_done(payload)
                if not give_next(conn):
                    busy.discard(conn)
    finally:
        for conn, proc in procs.items():
            if proc.is_alive():
                proc.terminate()  # also on Ctrl-C: what on_done recorded stays valid
            proc.join()
            conn.close()
