"""``sagan-prepare`` and ``python -m sagan.prepare``: the packer's command line (in :mod:`sagan.data.prepare`)."""

from ..data.prepare import CHUNK_SIZE, main, pack, summary

__all__ = ["CHUNK_SIZE", "main", "pack", "summary"]
