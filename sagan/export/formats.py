"""The export formats, a registry: ``sagan-export --format NAME`` and the checks follow :data:`FORMATS`.

A format is a name, the tolerance its images must meet against the checkpoint's generator, and three
steps: ``build`` the artifact from an :class:`ExportJob` (nothing written at ``--out`` yet), compute its
``images`` for the check batch in the format's own runtime, and ``save`` it at ``--out`` once the check
passed (``discard`` cleans up otherwise). Adding a format is one module with those steps plus one
:func:`register` call below (or from a plugin module: :mod:`sagan.plugins`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..io import atomic_write, check_free_space
from ..models.networks import Generator
from ..registry import EXPORT_FORMATS
from .check import CheckBatch
from .fold import ExportedGenerator, example_inputs
from .metadata import export_metadata, metadata_json
from .hf import move_into_place, staging_folder, write_export_folder
from .onnx import require_onnx, run_onnx, to_onnx
from .torchscript import run_torchscript, to_torchscript

TRACE_BATCH = 2  # traced at this batch size, checked at another: the batch axis must stay free


@dataclass
class ExportJob:
    plain: torch.nn.Module  # the folded generator (sagan.export.fold.plain_generator), eval mode
    hub_config: dict  # config.json of the hf format (sagan.export.hf.hub_config)
    out: Path
    _traced: ExportedGenerator | None = field(default=None, repr=False)

    @property
    def module(self) -> ExportedGenerator:
        """The function the traced formats record (plain-op attention)."""
        if self._traced is None:
            self._traced = ExportedGenerator(self.plain)
        return self._traced

    def example(self) -> tuple[torch.Tensor, ...]:
        return example_inputs(self.plain, TRACE_BATCH)

    def metadata(self) -> str:
        """The JSON the traced formats carry (z_dim, classes, resolution, output range)."""
        return metadata_json(export_metadata(self.hub_config))


@dataclass(frozen=True)
class ExportFormat:
    name: str
    help: str  # one line for --help
    tolerance: float  # max |exported - checkpoint G| on the check batch
    folder: bool  # --out is a folder (else a file)
    example_out: str
    build: Callable[[ExportJob], Any]
    images: Callable[[Any, CheckBatch], torch.Tensor]
    save: Callable[[Any, Path], None]
    discard: Callable[[Any], None] = lambda artifact: None
    requires: Callable[[], None] = lambda: None  # raises a UserError naming the extra when a package is missing


FORMATS = EXPORT_FORMATS  # sagan.registry.EXPORT_FORMATS, filled below


def register(fmt: ExportFormat) -> ExportFormat:
    return FORMATS.register(fmt.name, fmt)


def write_bytes(data: bytes, out: Path) -> None:
    with atomic_write(out, reserve=len(data)) as f:
        f.write(data)


def _onnx_build(job: ExportJob) -> bytes:
    return to_onnx(job.module, job.example(), metadata=job.metadata())


def _onnx_requires() -> None:
    require_onnx()


def _onnx_images(model: bytes, batch: CheckBatch) -> torch.Tensor:
    return run_onnx(model, batch.inputs())


def _torchscript_build(job: ExportJob) -> bytes:
    return to_torchscript(job.module, job.example(), metadata=job.metadata())


def _torchscript_images(archive: bytes, batch: CheckBatch) -> torch.Tensor:
    return run_torchscript(archive, batch.inputs())


def _hf_build(job: ExportJob) -> Path:
    state = job.plain.state_dict()
    # safetensors reports a full disk in its own words: refuse up front instead (weights + the two text files)
    check_free_space(job.out, sum(t.numel() * t.element_size() for t in state.values()) + (1 << 20), "--out")
    staged = staging_folder(job.out)
    try:
        return write_export_folder(staged, state, job.hub_config)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


@torch.no_grad()
def _hf_images(folder: Path, batch: CheckBatch) -> torch.Tensor:
    return Generator.from_pretrained(str(folder))(batch.z, batch.y)


def _hf_save(folder: Path, out: Path) -> None:
    move_into_place(folder, out)


register(ExportFormat(name="onnx", help="ONNX file (inputs z, y; dynamic batch), checked in onnxruntime",
                      tolerance=1e-4, folder=False, example_out="G.onnx", build=_onnx_build, images=_onnx_images,
                      save=write_bytes, requires=_onnx_requires))
register(ExportFormat(name="torchscript", help="TorchScript archive: torch.jit.load(PATH)(z, y), no sagan needed",
                      tolerance=1e-5, folder=False, example_out="G.torchscript.pt", build=_torchscript_build,
                      images=_torchscript_images, save=write_bytes))
register(ExportFormat(name="hf", help=("Hugging Face Hub folder (model.safetensors, config.json, README.md) for "
                                      "Generator.from_pretrained"),
                      tolerance=0.0, folder=True, example_out="G-hf/", build=_hf_build, images=_hf_images,
                      save=_hf_save, discard=lambda folder: shutil.rmtree(folder, ignore_errors=True)))
