"""Moved to :mod:`sagan.rundir` (the run-folder layout sits next to the checkpoint format); this name is kept
for code written against it."""

from ..rundir import *  # noqa: F401,F403
