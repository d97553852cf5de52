"""``sagan-prepare`` and ``python -m sagan.prepare``: the packer's command line (:mod:`sagan.data.cli`)."""

from ..data.cli import main
from ..data.prepare import CHUNK_SIZE, pack, summary

__all__ = ["CHUNK_SIZE", "main", "pack", "summary"]
