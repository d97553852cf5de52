"""User-facing errors.

Anything a user can cause (a bad path, a config typo, a checkpoint from another run) raises
:class:`UserError` with a one-line message: what is wrong, where, and what to do. The scripts turn it
into ``error: <message>`` on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import functools
import reprlib
import sys
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)


class UserError(Exception):
    """A mistake in the user's input, reported as one line without a traceback."""


class ConfigError(UserError):
    """An invalid configuration file, key or value."""


class CheckpointError(UserError):
    """A missing, corrupt or incompatible checkpoint."""


def one_line(e: BaseException, limit: int = 120) -> str:
    """An exception's message as one line for a user error: white space folded, cut at a word boundary
    (never mid-word) beyond ``limit`` characters, or the exception's type name when it has no message."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 4].rsplit(" ", 1)[0] + " ..."


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxtuple, _SHORT.maxdict, _SHORT.maxset = 3, 4, 4, 4, 4
_SHORT.maxstring = _SHORT.maxother = _SHORT.maxlong = 40


def short_repr(value: object, limit: int = 80) -> str:
    """``repr`` for error messages, bounded in time and length whatever ``value`` is: nesting and items
    are cut (``[[1, 2, ...], ...]``), so a value made of shared references (a YAML alias bomb, a crafted
    checkpoint: 2**40 leaves in a few KB) is never expanded."""
    text = _SHORT.repr(value)
    return text if len(text) <= limit else text[: limit - 4] + " ..."


def report_user_errors(fn: F) -> F:
    """Decorator for CLI entry points: print ``error: ...`` and exit 2 on :class:`UserError`."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]
