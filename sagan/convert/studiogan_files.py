"""Finding and reading PyTorch-StudioGAN's checkpoint files without running pickled code.

StudioGAN (``src/utils/ckpt.py``) saves each network of a run as its own file in the run's checkpoint
folder, for the best-FID and the current step:

    model=G-best-weights-step=N.pth       model=G-current-weights-step=N.pth
    model=G_ema-best-weights-step=N.pth   (only runs trained with an EMA generator)
    model=D-best-weights-step=N.pth

Each holds a dict: ``state_dict`` (the network), ``optimizer`` and bookkeeping such as ``seed``,
``run_name``, ``step``, ``ada_p`` / ``aa_p``, ``best_step``, ``best_fid`` (a numpy float in some
versions), ``best_fid_checkpoint_path``. Those are read with ``torch.load(weights_only=True)``, which
builds nothing but tensors and plain containers, plus numpy's scalar and dtype types (numbers
only): a file that needs any other Python object is refused by name instead of being trusted.
"""

from __future__ import annotations

import glob
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import check_checkpoint_file
from ..errors import UserError, one_line, short_repr

NETWORKS = ("G", "G_ema", "D")
STEP_RE = re.compile(r"-weights-step=(\d+)\.pth$")


class ConversionError(UserError):
    """Files that cannot be converted (missing, unsafe, or not the architecture asked for)."""


@dataclass(frozen=True)
class StudioGANFiles:
    G: Path
    D: Path
    G_ema: Path | None
    step: int  # from the file names (the same for every file of one save)

    def paths(self) -> list[Path]:
        return [p for p in (self.G, self.G_ema, self.D) if p is not None]


def file_pattern(net: str, which: str) -> str:
    return f"model={net}-{which}-weights-step=*.pth"


def find_files(ckpt_dir: str | Path, which: str) -> StudioGANFiles:
    """The G, D and (optional) G_ema files of one save (``which``: ``best`` or ``current``)."""
    folder = Path(ckpt_dir).expanduser()
    if not folder.is_dir():
        raise ConversionError(f"--ckpt-dir {folder} is not a folder; pass StudioGAN's checkpoint folder "
                              f"(the one holding {file_pattern('G', which)})")
    found: dict[str, Path | None] = {}
    for net in NETWORKS:
        # glob.escape: run folders may contain brackets; "G-" never matches "G_ema-" (the dash is literal)
        hits = sorted(Path(p) for p in glob.glob(str(Path(glob.escape(str(folder))) / file_pattern(net, which))))
        if len(hits) > 1:
            raise ConversionError(f"{folder} holds {len(hits)} {file_pattern(net, which)} files "
                                  f"({', '.join(h.name for h in hits[:3])}); move all but one save elsewhere")
        found[net] = hits[0] if hits else None
    for net in ("G", "D"):
        if found[net] is None:
            other = "current" if which == "best" else "best"
            present = sorted(p.name for p in folder.glob("model=*.pth"))[:4]
            seen = f"found {', '.join(present)}" if present else "no model=*.pth files there"
            raise ConversionError(f"no {file_pattern(net, which)} in {folder} ({seen}); StudioGAN's {net} file is "
                                  f"needed (download it too), or pass --which {other}")
    steps = {net: int(STEP_RE.search(p.name).group(1)) for net, p in found.items() if p is not None}
    if len(set(steps.values())) > 1:
        raise ConversionError(f"the {which} files in {folder} are from different steps "
                              f"({', '.join(f'{n}: {s}' for n, s in steps.items())}); use the files of one save")
    return StudioGANFiles(G=found["G"], D=found["D"], G_ema=found["G_ema"], step=steps["G"])


def _numpy_number_types() -> list:
    """What unpickling a numpy number needs: the scalar constructor (under numpy 1's and numpy 2's module
    names: a file names the one of the numpy that wrote it) and the plain numeric dtypes."""
    multiarray = getattr(np, "_core", None) or np.core
    scalar = multiarray.multiarray.scalar
    allowed: list = [scalar, (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"),
                     np.dtype]
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25: one class per dtype
    if dtypes is not None:
        for name in ("Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
                     "Float16", "Float32", "Float64", "LongLong", "ULongLong"):
            cls = getattr(dtypes, f"{name}DType", None)
            if cls is not None:
                allowed.append(cls)
    return allowed


def _refused_global(message: str) -> str | None:
    """The Python object a weights_only load refused, from torch's message (None: not that kind of failure,
    e.g. bytes that are no pickle at all)."""
    m = re.search(r"GLOBAL ([\w.]+)", message) or re.search(r"got <class '([\w.]+)'>", message)
    return m.group(1) if m else None


def load_file(path: Path) -> dict[str, Any]:
    """One StudioGAN file as a dict, loaded with ``weights_only=True`` (numpy numbers allowed)."""
    check_checkpoint_file(Path(path), "StudioGAN file")
    try:
        with torch.serialization.safe_globals(_numpy_number_types()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        name = _refused_global(str(e))
        if name is None:
            detail = " ".join(str(e).split("WeightsUnpickler error:")[-1].split())[:80]
            raise ConversionError(f"cannot read {path}: not a torch checkpoint ({detail}); download it again") from None
        raise ConversionError(f"refusing to load {path}: it holds a pickled Python object ({name}) that could run "
                              "code when loaded; StudioGAN's files hold only tensors, numbers and strings, so get "
                              "this file from its original source") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        detail = one_line(e)
        raise ConversionError(f"cannot read {path}: truncated, corrupt or not a torch file ({detail}); "
                              "download it again") from None
    if not isinstance(obj, dict):
        raise ConversionError(f"{path} holds a {type(obj).__name__}, not StudioGAN's checkpoint dict; "
                              "pass StudioGAN's model=...-weights-step=N.pth files")
    return obj


def state_dict_of(obj: dict[str, Any], path: Path) -> dict[str, torch.Tensor]:
    """The network weights of a loaded file (``state_dict``, or the dict itself if it is one), without the
    ``module.`` prefix that a DataParallel/DDP-wrapped save adds."""
    state = obj.get("state_dict", obj)
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise ConversionError(f"{path} has no state_dict of tensors (keys: {', '.join(map(str, list(obj)[:6]))}); "
                              "pass StudioGAN's model=...-weights-step=N.pth files")
    for key, tensor in state.items():
        if not isinstance(key, str):
            raise ConversionError(f"{path}: state_dict key {short_repr(key, 40)} is not a string; the file is damaged "
                                  "or not a StudioGAN checkpoint")
        if not tensor.is_floating_point() and not key.endswith("num_batches_tracked"):
            raise ConversionError(f"{path}: tensor {key} holds {str(tensor.dtype).replace('torch.', '')} values, not "
                                  "floating-point weights; the file is damaged or not a StudioGAN checkpoint")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ConversionError(f"{path}: tensor {key} holds NaN/Inf values (a diverged or damaged run); convert "
                                  "another save")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def plain(value: Any) -> Any:
    """A bookkeeping value as a builtin (numpy numbers -> int/float), or None when it is not a number or string."""
    if isinstance(value, np.generic):
        value = value.item()
    if torch.is_tensor(value) and value.numel() == 1:
        value = value.item()
    return value if isinstance(value, (int, float, str, bool)) else None
