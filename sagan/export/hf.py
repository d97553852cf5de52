"""``--format hf``: a checkpoint exported as a folder in the Hugging Face Hub's convention, loadable with
``Generator.from_pretrained(folder_or_repo_id)``: its ``config.json`` (the run's metrics at the step
included), written into a temp folder beside ``--out``, checked, then moved into place.

The folder format itself (model.safetensors, config.json, README.md) is :mod:`sagan.models.hf_folder`;
``from_pretrained`` (huggingface_hub's ``ModelHubMixin``, the ``[hub]`` extra, so the loaded generator
also has ``save_pretrained`` and ``push_to_hub``) is :mod:`sagan.models.hub`. The format's names are
importable from here as well.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..config import Config
from ..errors import UserError
from ..io import TEMP_SUFFIX, current_umask
from ..metrics.history import read_records
from ..models.hf_folder import (CARD_NAME, CONFIG_NAME, FORMAT, HF_FILES, HUB_EXTRA, VERSION, WEIGHTS_NAME,  # noqa: F401
                                load_weights, read_hf_config, write_hf_folder)
from ..rundir import METRICS_FILE, checkpoint_run_dir
from ..serve.space import SPACE_FILES, space_card_section, space_front_matter, write_space_files

# checkpoint meta entries worth keeping in config.json: how much was trained, where converted weights came from
PROVENANCE_KEYS = ("images_seen", "converted_from", "run_name", "best_fid", "best_step", "which", "note")


def metrics_at_step(ckpt: dict) -> dict | None:
    """The evaluation recorded for the checkpoint's step in its run's ``metrics.jsonl`` (None if none)."""
    records = [r for r in read_records(checkpoint_run_dir(ckpt["path"]) / METRICS_FILE) if r.get("step") == ckpt["step"]]
    if not records:
        return None
    r = records[-1]
    return {"step": r["step"], "values": r.get("values", {}), "protocol": r.get("protocol", {})}


def hub_config(cfg: Config, ckpt: dict, bn_stats: str, standing_batches: int) -> dict[str, Any]:
    """``config.json`` of an export (no key collides with ``Generator.__init__``'s arguments, which
    ``ModelHubMixin`` would otherwise pass on)."""
    meta = ckpt.get("meta") or {}
    return {
        "format": FORMAT, "format_version": VERSION, "architecture": "Generator",
        "spectral_norm": "folded",
        "sagan_config": cfg.to_dict(),
        "class_names": ckpt.get("class_names"),
        "step": ckpt["step"],
        "generator": "ema" if ckpt.get("used_ema") else "G",
        "bn_stats": {"mode": bn_stats, "standing_batches": standing_batches if bn_stats == "standing" else None},
        "metrics": metrics_at_step(ckpt),
        "provenance": {k: meta[k] for k in PROVENANCE_KEYS if isinstance(meta.get(k), (int, float, str))},
    }


# --------------------------------------------------------------------------------------------------
# the export: written into a temp folder beside --out, checked, then moved into place


# what an export folder holds: the format's files, and the Hugging Face Space of sagan-serve's page
EXPORT_FILES = HF_FILES + SPACE_FILES  # + app.py, requirements.txt (sagan.serve.space)


def write_export_folder(folder: str | os.PathLike, state: dict[str, torch.Tensor], config: dict[str, Any]) -> Path:
    """The format's files (:func:`sagan.models.hf_folder.write_hf_folder`) and the Space's ``app.py`` and
    ``requirements.txt``, which run sagan-serve's page from the folder."""
    folder = write_hf_folder(folder, state, config, space_front_matter(), space_card_section())
    write_space_files(folder)
    return folder


def staging_folder(out: Path) -> Path:
    """A fresh temp folder beside ``out`` (same file system, so the final rename is a move)."""
    staged = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=TEMP_SUFFIX, dir=out.parent))
    os.chmod(staged, 0o777 & ~current_umask())  # mkdtemp's 0700 would hide the shared folder from others
    return staged


def check_out_folder(out: Path) -> None:
    """``--out`` must be new, empty, or an earlier export (only the format's files): never clear a stranger."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; the hf format writes a folder: give a new folder name")
    if out.is_dir():
        strangers = sorted(p.name for p in out.iterdir() if p.name not in EXPORT_FILES)
        if strangers:
            raise UserError(f"--out {out}/ holds {strangers[0]}, not only an earlier export ({', '.join(EXPORT_FILES)}); "
                            "refusing to replace it: pick an empty or new folder")


def move_into_place(staged: Path, out: Path) -> None:
    """Replace ``out`` (absent, empty, or an earlier export) by the checked ``staged`` folder."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old.{os.getpid()}{TEMP_SUFFIX}")
        out.rename(old)
    try:
        staged.rename(out)
    except BaseException:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
