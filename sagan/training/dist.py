"""Work that only the main process does, with its failure shared: under several accelerate processes a
one-line error on the main process (a full disk, an unwritable folder) must stop every process with the
same message, not leave the others waiting at their next collective until the launcher kills them."""

from __future__ import annotations

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
