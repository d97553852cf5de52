"""``--format hf``: a folder in the Hugging Face Hub's convention, loadable with
``Generator.from_pretrained(folder_or_repo_id)``.

    model.safetensors  the folded generator's weights (spectral norm folded, BN statistics baked in);
                       safetensors holds tensors only, so loading it runs no code
    config.json        the model config, class names, the checkpoint's step, which generator (EMA or
                       raw) and BN statistics, and its metrics from the run's metrics.jsonl when present
    README.md          a model card: what it is, how it was trained, its metrics and protocol, how to load

``from_pretrained`` goes through huggingface_hub's ``ModelHubMixin`` (the ``[hub]`` extra), so the loaded
generator also has ``save_pretrained`` and ``push_to_hub`` (:mod:`sagan.export.hub`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..config import Config
from ..errors import CheckpointError, UserError, one_line
from ..io import TEMP_SUFFIX, current_umask, write_text_atomic
from ..serve.space import SPACE_FILES, write_space_files

WEIGHTS_NAME, CONFIG_NAME, CARD_NAME = "model.safetensors", "config.json", "README.md"
HF_FILES = (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME) + SPACE_FILES  # + app.py, requirements.txt (sagan.serve.space)
FORMAT, VERSION = "sagan-generator", 1
HUB_EXTRA = "pip install 'sagan[hub]' (huggingface_hub and safetensors)"
# checkpoint meta entries worth keeping in config.json: how much was trained, where converted weights came from
PROVENANCE_KEYS = ("images_seen", "converted_from", "run_name", "best_fid", "best_step", "which", "note")


def _safetensors():
    try:
        import safetensors.torch as st
    except ImportError:
        raise UserError(f"the hf format needs safetensors; {HUB_EXTRA}") from None
    return st


def metrics_at_step(ckpt: dict) -> dict | None:
    """The evaluation recorded for the checkpoint's step in its run's ``metrics.jsonl`` (None if none)."""
    from ..metrics.history import read_records
    from ..training.rundir import METRICS_FILE, checkpoint_run_dir

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


def write_hf_folder(folder: str | os.PathLike, state: dict[str, torch.Tensor], config: dict[str, Any]) -> Path:
    """The three files of the format in ``folder`` (created if needed)."""
    from .card import model_card

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_NAME
    _safetensors().save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(weights),
                             metadata={"format": "pt"})
    os.chmod(weights, 0o666 & ~current_umask())
    write_text_atomic(folder / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
    write_text_atomic(folder / CARD_NAME, model_card(config))
    write_space_files(folder)  # the Hugging Face Space of sagan-serve's page
    return folder


def read_hf_config(config: dict | None, where: str) -> Config:
    """The sagan config inside a ``config.json``, checked; one line when it is not an export of ours."""
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{where} has no sagan config.json (format {FORMAT!r}); pass a folder or Hub repo "
                              "written by sagan-export --format hf")
    if not isinstance(config.get("format_version"), int) or config["format_version"] > VERSION:
        raise CheckpointError(f"{where} has format version {config.get('format_version')!r}, newer than this sagan "
                              f"reads (<= {VERSION}); upgrade sagan")
    try:
        return Config.from_dict(config["sagan_config"], where=f"config.json of {where}")
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"config.json of {where} is malformed ({one_line(e, 80)})") from None


def load_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    try:
        return _safetensors().load_file(str(path))
    except Exception as e:  # noqa: BLE001  (safetensors raises its own error types)
        raise CheckpointError(f"cannot read {path}: not a safetensors file or damaged ({one_line(e, 80)})") from None


def from_pretrained(path_or_repo_id: str | os.PathLike, **kwargs):
    """``Generator.from_pretrained``: a folder written by ``sagan-export --format hf`` or a Hub repo id,
    loaded as a generator in eval mode (with ``save_pretrained`` / ``push_to_hub``)."""
    try:
        from .hub import HubGenerator
    except ImportError:
        raise UserError(f"Generator.from_pretrained needs huggingface_hub; {HUB_EXTRA}") from None
    return HubGenerator.from_pretrained(path_or_repo_id, **kwargs)


# --------------------------------------------------------------------------------------------------
# the export: written into a temp folder beside --out, checked, then moved into place


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
        strangers = sorted(p.name for p in out.iterdir() if p.name not in HF_FILES)
        if strangers:
            raise UserError(f"--out {out}/ holds {strangers[0]}, not only an earlier export ({', '.join(HF_FILES)}); "
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
