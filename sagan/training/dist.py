"""Work that only the main process does, with its failure shared: under several accelerate processes a
one-line error on the main process (a full disk, an unwritable folder) must stop every process with the
same message, not leave the others waiting at their next collective until the launcher kills them. And the
other way round: a process that is killed makes the next collective of the others fail, which they report in
one line (:func:`lost_peer`) instead of gloo's traceback."""

from __future__ import annotations

import os
from typing import Any, Callable

from ..errors import UserError


def on_main(accelerator, fn: Callable[..., Any], *args, **kwargs) -> Any:
    """``fn(*args, **kwargs)`` on the main process, its result broadcast to every process; a
    :class:`UserError` it raises is raised on every process."""
    result, error = None, None
    if accelerator.is_main_process:
        try:
            result = fn(*args, **kwargs)
        except UserError as e:
            error = (type(e), str(e))
    if accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        box = [result, error]
        broadcast_object_list(box)
        result, error = box
    if error is not None:
        kind, message = error
        raise (kind if issubclass(kind, UserError) else UserError)(message)
    return result


# a collective whose peer process is gone: what gloo (pair.cc) and the TCP store say, and NCCL's abort
PEER_GONE = ("Connection reset by peer", "Connection closed by peer", "Broken pipe", "Connection refused",
             "remote process exited", "NCCL communicator was aborted")


def lost_peer(error: BaseException) -> str | None:
    """When ``error`` is this process's collective failing because another process of the run has gone (killed,
    crashed, out of memory): which one, as words; None for any other error. The rank and world size are
    torchrun's (``accelerate launch``) environment, so this works before the trainer exists."""
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    if world < 2 or not isinstance(error, RuntimeError) or not any(s in str(error) for s in PEER_GONE):
        return None
    others = [r for r in range(world) if r != rank]
    who = f"rank {others[0]}" if len(others) == 1 else f"another rank (one of {', '.join(map(str, others))})"
    return f"process {who} of this {world}-process run stopped (killed or crashed)"
