"""``--format torchscript``: ``torch.jit.load(PATH)(z, y)`` (``(z)`` for an unconditional generator)
-> images in [-1, 1], with nothing of sagan installed: the traced graph holds only torch's own ops; its
parameters do not require grad, so neither do its images. ``sagan.json`` inside says what it is
(sagan.export.metadata)."""

from __future__ import annotations

import io
import warnings

import torch

from .fold import ExportedGenerator
from .metadata import TORCHSCRIPT_EXTRA


def to_torchscript(module: ExportedGenerator, example: tuple[torch.Tensor, ...], metadata: str | None = None) -> bytes:
    """The TorchScript archive (bytes) of ``module`` traced at ``example``; the batch size stays free.
    ``metadata``: the JSON stored as the extra file ``sagan.json`` (sagan.export.metadata)."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notes; the result is checked instead
        traced = torch.jit.trace(module, example, check_trace=False)
        torch.jit.save(traced, buf, _extra_files={TORCHSCRIPT_EXTRA: metadata} if metadata else None)
    return buf.getvalue()


@torch.no_grad()
def run_torchscript(archive: bytes, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(io.BytesIO(archive), map_location="cpu")
    return loaded(*inputs)
