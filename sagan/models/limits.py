"""Checks of an untrusted Hugging Face folder before anything is allocated from it: ``config.json`` is
read with a size bound and parsed in one line on failure, the generator it describes is sized without
building it, the weights file's tensor shapes (read from the safetensors header) must be exactly that
generator's, and every weight must be finite.

A config's model section sets every tensor size (``model.g_ch``, ``g_widths``, ``z_dim``,
``num_classes``, ``shared_dim``, ``resolution``): :func:`expected_shapes` builds the folded generator on
torch's ``meta`` device, which records shapes and allocates nothing, so one bound on its size covers them
all. The initialisers are skipped there: on meta tensors they run through torch's Python reference
kernels, whose first use costs seconds of imports for values that are never used.
"""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from typing import Any, Iterator

import torch

from ..config import Config
from ..errors import CheckpointError, one_line
from .hf_folder import _safetensors

# 2^30 parameters = 4 GiB in float32: 25x SAGAN's ImageNet generator (~42M) and 19x BigGAN-deep's
# 512px one (~56M, Brock et al. 2019 table 7); a config beyond it is damaged or not an export of ours
MAX_GENERATOR_PARAMETERS = 1 << 30
MAX_CONFIG_BYTES = 64 << 20  # config.json: the model config, class names (ImageNet-21k's fit in 1 MB), metrics
SIZE_KEYS = ("g_ch", "g_widths", "z_dim", "num_classes", "shared_dim", "resolution")
_init_lock = threading.Lock()


def read_config_json(path: Path, where: str) -> dict[str, Any]:
    """``config.json`` parsed, bounded in size; one line when it is too large, not JSON, or not an object."""
    try:
        size = path.stat().st_size
        if not path.is_file() or size > MAX_CONFIG_BYTES:
            raise CheckpointError(f"{path} of {where} is {'not a regular file' if not path.is_file() else f'{size} bytes'}"
                                  f", not a sagan config.json (at most {MAX_CONFIG_BYTES >> 20} MiB); the folder is "
                                  "damaged or not written by sagan-export --format hf")
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} of {where} is not JSON ({one_line(e, 80)}); the folder is damaged or not "
                              "written by sagan-export --format hf") from None
    except OSError as e:
        raise CheckpointError(f"cannot read {path} of {where} ({e.strerror or e})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} of {where} holds a JSON {type(config).__name__}, not an object; the folder is "
                              "damaged or not written by sagan-export --format hf")
    return config


@contextlib.contextmanager
def _shapes_only() -> Iterator[None]:
    """Modules built inside get meta tensors and skip ``torch.nn.init`` (module docstring)."""
    inits = {n: getattr(torch.nn.init, n) for n in dir(torch.nn.init) if n.endswith("_") and not n.startswith("_")}
    with _init_lock:
        for name in inits:
            setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
        try:
            with torch.device("meta"):
                yield
        finally:
            for name, fn in inits.items():
                setattr(torch.nn.init, name, fn)


def expected_shapes(plain_cfg: Config, generator_class: type) -> dict[str, tuple[int, ...]]:
    """Every tensor of the folded generator of ``plain_cfg`` (``model.g_sn: false``) by name, with its
    shape; nothing allocated. ``generator_class``: :class:`sagan.models.Generator` (or a subclass)."""
    with _shapes_only():
        G = generator_class.from_config(plain_cfg)
    return {k: tuple(v.shape) for k, v in G.state_dict().items()}


def check_generator_size(shapes: dict[str, tuple[int, ...]], cfg: Config, where: str) -> None:
    total = sum(_numel(s) for s in shapes.values())
    if total > MAX_GENERATOR_PARAMETERS:
        m = cfg.model
        keys = ", ".join(f"{k}={getattr(m, k)}" for k in SIZE_KEYS if getattr(m, k, None) not in (None, [], ()))
        raise CheckpointError(f"config.json of {where} describes a generator of {total:.3g} values ({keys}), more "
                              f"than sagan loads ({MAX_GENERATOR_PARAMETERS:.3g}, 4 GiB in float32); the file is "
                              "damaged or not written by sagan-export --format hf")


def weights_header(path: Path, where: str) -> dict[str, tuple[int, ...]]:
    """The tensor shapes a safetensors file declares, from its header only (no tensor is read)."""
    _safetensors()
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # noqa: BLE001  (safetensors raises its own error types)
        raise CheckpointError(f"cannot read {path} of {where}: not a safetensors file or damaged "
                              f"({one_line(e, 80)})") from None


def check_weights_match(header: dict[str, tuple[int, ...]], shapes: dict[str, tuple[int, ...]], path: Path,
                        where: str) -> None:
    """The weights file holds exactly the generator config.json describes: same names, same shapes."""
    missing, extra = sorted(shapes.keys() - header.keys()), sorted(header.keys() - shapes.keys())
    if missing or extra:
        what = f"lacks {missing[0]}" if missing else f"holds {extra[0]}, which the generator has not"
        raise CheckpointError(f"{path} of {where} {what} ({len(missing)} missing, {len(extra)} unexpected tensors): "
                              "the weights do not belong to config.json's model; re-export the checkpoint")
    for k, shape in shapes.items():
        if header[k] != shape:
            raise CheckpointError(f"{path} of {where}: tensor {k} has shape {list(header[k])}, config.json's model "
                                  f"needs {list(shape)}: the weights do not belong to it; re-export the checkpoint")


def check_weights_finite(state: dict[str, torch.Tensor], path: Path, where: str) -> None:
    """NaN/Inf weights draw NaN images silently: refused by name, as checkpoints are."""
    for k, v in state.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError(f"{path} of {where} is unusable: tensor {k} holds NaN/Inf values (a diverged or "
                                  "damaged model); re-export it from a good checkpoint")


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n
