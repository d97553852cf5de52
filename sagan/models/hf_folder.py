"""The ``hf`` folder format: what ``sagan-export --format hf`` writes and ``Generator.from_pretrained`` /
``save_pretrained`` read and write, in the Hugging Face Hub's convention.

    model.safetensors  the folded generator's weights (spectral norm folded, BN statistics baked in);
                       safetensors holds tensors only, so loading it runs no code
    config.json        the model config, class names, the checkpoint's step, which generator (EMA or
                       raw) and BN statistics, and its metrics from the run's metrics.jsonl when present
    README.md          a model card (:mod:`sagan.models.card`)

The export that writes such a folder from a checkpoint is :mod:`sagan.export.hf`; the Hub loader is
:mod:`sagan.models.hub`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from ..config import Config
from ..errors import CheckpointError, UserError, one_line
from ..io import current_umask, write_text_atomic
from .card import model_card

WEIGHTS_NAME, CONFIG_NAME, CARD_NAME = "model.safetensors", "config.json", "README.md"
HF_FILES = (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME)
FORMAT, VERSION = "sagan-generator", 1
HUB_EXTRA = "pip install 'sagan[hub]' (huggingface_hub and safetensors)"


def _safetensors():
    try:
        import safetensors.torch as st
    except ImportError:
        raise UserError(f"the hf format needs safetensors; {HUB_EXTRA}") from None
    return st


def write_hf_folder(folder: str | os.PathLike, state: dict[str, torch.Tensor], config: dict[str, Any],
                    card_front_matter: Sequence[str] = (), card_sections: Sequence[str] = ()) -> Path:
    """The three files of the format in ``folder`` (created if needed); ``card_*``: lines the model card
    gains (:func:`sagan.models.card.model_card`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_NAME
    _safetensors().save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(weights),
                             metadata={"format": "pt"})
    os.chmod(weights, 0o666 & ~current_umask())
    write_text_atomic(folder / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
    write_text_atomic(folder / CARD_NAME, model_card(config, card_front_matter, card_sections))
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


def plain_config(cfg: Config) -> Config:
    """The same generator without spectral norm: the layout folded weights load into."""
    return cfg.replace(model={"g_sn": False})
