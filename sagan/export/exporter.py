"""One export: load a checkpoint's generator, set its BN statistics, fold it, build the format, check it
against the checkpoint's generator on a fixed batch, and only then write ``--out``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint import check_checkpoint_file, resolve_checkpoint
from ..errors import CheckpointError, UserError
from ..io import NotWritableError, check_replaceable, check_writable
from ..models.loading import load_generator
from ..sampling.bn_stats import bn_mode_description, prepare_generator
from ..sampling.ema_check import checkpoint_notes
from .check import check_batch, compare
from .fold import plain_generator
from .formats import FORMATS, ExportJob
from .hf import check_out_folder, hub_config
from .metadata import is_sagan_export

EXPORT_BN_MODES = ("running", "standing")  # per-batch statistics make images depend on their batch: not a function


@dataclass(frozen=True)
class ExportResult:
    out: Path
    format: str
    max_diff: float
    tolerance: float
    num_checked: int
    step: int
    used_ema: bool
    bn: str  # one line: which BN statistics are baked in
    notes: tuple[str, ...] = ()  # about the EMA generator (sagan.sampling.ema_check.checkpoint_notes)

    def summary(self) -> str:
        which = f"{'EMA' if self.used_ema else 'raw'} G at step {self.step}"
        return (f"wrote {self.out} ({self.format}, {which}, {self.bn}); checked against the checkpoint's generator on "
                f"{self.num_checked} images: max |difference| {self.max_diff:.3g} (tolerance {self.tolerance:g})")


def check_out(out: Path, folder: bool, fmt: str, example: str, checkpoint=None, overwrite: bool = False) -> None:
    """The shape of ``--out`` for the format, that it replaces nothing but an earlier export (or anything
    but the input with ``overwrite``), and that its folder is writable, before any work."""
    if folder:

        check_out_folder(out)
    elif out.is_dir() or str(out).endswith(("/", os.sep)):
        raise UserError(f"--out {out} is a folder; --format {fmt} writes one file: give a file name such as "
                        f"{out / example}")
    else:
        check_not_input(out, checkpoint)
        check_replaceable(out, is_sagan_export, overwrite)
    try:
        check_writable(out.parent, "output folder")
    except NotWritableError as e:
        raise NotWritableError(str(e).replace("pick another location", "pick another --out")) from None


def check_not_input(out: Path, checkpoint) -> None:
    """``--out`` never replaces the checkpoint it exports (the same file, a hard link such as ``last.pt``
    beside its ``step_*.pt``, or a symlink to it), not even with ``--overwrite``."""
    if checkpoint is None or not out.exists():
        return
    try:
        source = resolve_checkpoint(checkpoint)
        same = os.path.samefile(out, source)
    except (UserError, OSError):
        return  # no readable input: the loader says why
    if same:
        raise UserError(f"--out {out} is the checkpoint being exported ({source}); refusing to replace it: give "
                        "another --out")


def _generator_missing(path) -> str | None:
    """Why a file that failed to load as a checkpoint cannot be exported, when it holds weights without a
    generator (a discriminator's state dict, a D-only file); None otherwise (the loader's reason stands)."""
    try:
        p = resolve_checkpoint(path)
        check_checkpoint_file(p)
        obj = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001  (unreadable: the loader's own message says why)
        return None
    if not isinstance(obj, dict):
        return None
    state = obj.get("state_dict", obj) if "G" not in obj else obj.get("G")
    if isinstance(state, dict) and state and all(torch.is_tensor(v) for v in state.values()):
        if not any(k.endswith("running_mean") for k in state):  # every generator has batch norms, D none
            return (f"{p} holds discriminator weights only (no batch norm, so no generator); export needs a checkpoint "
                    "with a generator: one written by train.py, or `sagan-convert studiogan` output")
        return None
    if obj.get("format") == "sagan-checkpoint" and not obj.get("G"):
        return (f"{p} has no generator (field G is {'missing' if 'G' not in obj else 'empty'}); export needs a "
                "checkpoint with G: one written by train.py, or `sagan-convert studiogan` output")
    return None


def load_source(checkpoint, ema: bool):
    """``(G, cfg, ckpt)`` of the checkpoint on CPU in eval mode; one line for files without a generator."""
    try:
        return load_generator(checkpoint, ema=ema, device="cpu")
    except CheckpointError:
        why = _generator_missing(checkpoint)
        if why is not None:
            raise CheckpointError(why) from None
        raise


def export_checkpoint(checkpoint, fmt: str, out, *, ema: bool = True, bn_stats: str = "running",
                      standing_batches: int = 16, seed: int = 0, num_checked: int = 8,
                      overwrite: bool = False) -> ExportResult:
    """Export the generator of ``checkpoint`` (``RUN``, ``RUN:best`` or a file) as ``fmt`` at ``out``.
    An existing ``out`` file is replaced only when it is an earlier sagan export, or with ``overwrite``;
    never when it is the checkpoint itself."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is unknown; use one of {', '.join(FORMATS)}")
    if bn_stats not in EXPORT_BN_MODES:
        raise UserError(f"--bn-stats {bn_stats!r} cannot be exported (images would depend on their batch); use "
                        f"{' or '.join(EXPORT_BN_MODES)}")
    if num_checked < 1:
        raise UserError(f"--check-images must be >= 1, got {num_checked}")
    spec = FORMATS[fmt]
    out = Path(out).expanduser()
    spec.requires()
    check_out(out, spec.folder, fmt, spec.example_out, checkpoint, overwrite)
    G, cfg, ckpt = load_source(checkpoint, ema)
    notes = tuple(checkpoint_notes(G, cfg, ckpt)) if bn_stats == "running" else ()
    prepare_generator(G, bn_stats, standing_batches=standing_batches, seed=seed, device="cpu")
    batch = check_batch(G, num_checked, seed)
    job = ExportJob(plain_generator(G, cfg), hub_config(cfg, ckpt, bn_stats, standing_batches), out)
    artifact = spec.build(job)
    try:
        diff = compare(spec.images(artifact, batch), batch, spec.tolerance, f"the {fmt} export")
        spec.save(artifact, out)
    except BaseException:
        spec.discard(artifact)
        raise
    return ExportResult(out=out, format=fmt, max_diff=diff, tolerance=spec.tolerance, num_checked=num_checked,
                        step=ckpt["step"], used_ema=ckpt["used_ema"],
                        bn=bn_mode_description(bn_stats, standing_batches), notes=notes)
