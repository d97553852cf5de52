"""``sagan-prepare`` / ``python -m sagan.prepare``: the packer's command line, which lives in :mod:`sagan.data.prepare`."""

from ..data.prepare import CHUNK_SIZE, main, pack, summary

__all__ = ["CHUNK_SIZE", "main", "pack", "summary"]
