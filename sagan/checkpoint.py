"""Checkpoint files: one ``.pt`` file per snapshot, written atomically, loadable with ``weights_only=True``.

Layout of a checkpoint (a plain dict, nothing pickled but tensors and builtins; the one place that
builds it is :func:`sagan.training.run_state.training_payload`):

    format      "sagan-checkpoint"          version   1
    step        int (completed G steps)     config    Config.to_dict()
    G, D        state dicts                 G_ema     state dict, or None (no EMA)
    opt_G, opt_D  optimizer state dicts, or None (a converted checkpoint: resume starts fresh optimizers)
    rng         {"torch": uint8 tensor, "cuda": [...], "python": [...], "numpy": [...],
                 "per_process": [...] under several processes}, or None
    data        {"epoch": int, "index": int (images of the epoch consumed), "seed": int, "size": int},
                or None (start of the data)
    class_names list[str] or None           meta      dict of builtins (images seen, time, best FID, ...)

Writes are atomic (:mod:`sagan.io`), so a crash mid-save never leaves a half-written ``last.pt``; the
space is reserved first, so a full disk fails before anything is written, in one line. Reads verify the
zip's CRC-32 of every record (torch's reader does not), the schema (one line naming a malformed field),
and that every weight is finite: a corrupt or diverged file is refused by name, with the older
``step_*.pt`` files as the suggested fallback.

``RUN`` (a run directory) means ``RUN/checkpoints/last.pt``; ``RUN:best`` the best checkpoint by FID
(``checkpoints/best.pt``, written during training when evaluations run); ``RUN:last`` is explicit.
"""

from __future__ import annotations

import os
import importlib
import re
import stat
import zipfile
import zlib
from pathlib import Path
from typing import Any, Collection

import torch

from .config import Config
from .errors import CheckpointError, ConfigError, one_line, short_repr
from .io import atomic_write, printable

FORMAT = "sagan-checkpoint"
VERSION = 1
REQUIRED_KEYS = ("step", "config", "G", "D", "G_ema", "opt_G", "opt_D", "rng", "data")
CHECKPOINT_DIR, LAST, BEST = "checkpoints", "last.pt", "best.pt"
STEP_FILE = re.compile(r"step_(\d+)\.pt$")
# The largest file a checkpoint can honestly be. The largest preset (imagenet128_feat32) has 42.2M G and
# 39.5M D state elements; its checkpoint holds G, G_ema and D plus Adam's two moments of each G and D
# weight: (4 x 42.2M + 3 x 39.5M) x 4 bytes = 1.15 GB. 16x that leaves room for wider networks than the
# presets (g_ch/d_ch doubled is 4x the weights) and stays far below what would exhaust a machine's memory.
MAX_CHECKPOINT_BYTES = 16 * 1_150_000_000
MAX_BYTES_ENV = "SAGAN_MAX_CHECKPOINT_BYTES"  # a trusted, larger checkpoint: raise the bound


def step_file_name(step: int) -> str:
    return f"step_{step:07d}.pt"


def _tensor_bytes(obj: Any) -> int:
    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Atomically write ``payload`` (plus format/version tags) to ``path``; the space is reserved first."""
    size = _tensor_bytes(payload)
    with atomic_write(path, reserve=int(size * 1.02) + (1 << 20)) as f:
        torch.save({"format": FORMAT, "version": VERSION, **payload}, f)
    return Path(path)


# --------------------------------------------------------------------------------------------------
# finding and reading


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, a run directory / its ``checkpoints/`` folder (then ``last.pt`` in it), or
    ``RUN:best`` / ``RUN:last``."""
    spec = str(path)
    which = LAST
    m = re.match(r"^(.*):(best|last)$", spec)
    if m and not Path(spec).exists():
        spec, which = m.group(1), f"{m.group(2)}.pt"
    p = Path(spec)
    if p.is_dir():
        for cand in (p / CHECKPOINT_DIR / which, p / which):
            if os.path.lexists(cand) and not cand.is_dir():  # a FIFO or a dangling link: the loader says why
                return cand
        if which == BEST:
            raise CheckpointError(f"no best checkpoint in {p} (checkpoints/best.pt is written when train.fid_every "
                                  f"evaluations run); use {p} for the last one")
        raise CheckpointError(f"no checkpoint in {p} (looked for checkpoints/last.pt and last.pt); pass a .pt file")
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist; check the path")
    return p


def max_checkpoint_bytes() -> int:
    value = os.environ.get(MAX_BYTES_ENV, "").strip()
    return int(value) if value.isdigit() else MAX_CHECKPOINT_BYTES


def check_checkpoint_file(p: Path, what: str = "checkpoint") -> int:
    """Refuse, before anything opens it, a path that is not a regular file after following symlinks (a
    FIFO, ``/dev/zero``, a socket: reading one hangs or never ends) or one larger than any checkpoint can
    honestly be; returns its size in bytes."""
    try:
        st = p.stat()  # follows symlinks; never opens the file (opening a FIFO blocks)
    except OSError as e:
        raise CheckpointError(f"cannot read {what} {p} ({e.strerror or e}); check the path") from None
    shown = f"{p} (a symlink to {os.path.realpath(p)})" if p.is_symlink() else str(p)
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode) or
                stat.S_ISBLK(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "a folder"
                if stat.S_ISDIR(st.st_mode) else "not a plain file")
        raise CheckpointError(f"{what} {shown} is {kind}, not a regular file; refusing to read it (it may never "
                              f"end); pass a .pt file written by train.py")
    bound = max_checkpoint_bytes()
    if st.st_size > bound:
        raise CheckpointError(f"{what} {shown} is {st.st_size / 1e9:.1f} GB, more than any sagan checkpoint "
                              f"(bound {bound / 1e9:.1f} GB: 16x the largest preset's); refusing to read it; if you "
                              f"trust it, raise the bound with {MAX_BYTES_ENV}=<bytes>")
    return st.st_size


def fallback_hint(p: Path) -> str:
    older = sorted((p.parent.glob("step_*.pt")), reverse=True)
    older = [o for o in older if o.resolve() != p.resolve()]
    return f"use an older checkpoint such as {older[0]}" if older else "use another checkpoint"


def verify_zip(p: Path) -> None:
    """Check the CRC-32 of every record of a torch zip file (torch.load does not) in one streaming pass:
    zipfile compares each record's CRC when it has been read to its end."""
    try:
        with zipfile.ZipFile(p) as zf:
            for info in zf.infolist():
                with zf.open(info) as f:
                    while f.read(1 << 22):
                        pass
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {p} is corrupt ({one_line(e)}); {fallback_hint(p)}") from None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", verify: bool = True) -> dict[str, Any]:
    """Load and validate a checkpoint; every failure is a one-line :class:`CheckpointError`.

    ``verify``: check the zip CRCs (a full read of the file) and that every weight is finite.
    """
    p = resolve_checkpoint(path)
    check_checkpoint_file(p)
    if verify and zipfile.is_zipfile(p):
        verify_zip(p)
    try:  # unverified reads (a status, a step) map the file instead of reading every weight
        ckpt = torch.load(p, map_location=map_location, weights_only=True, mmap=not verify and zipfile.is_zipfile(p))
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read checkpoint {p}: corrupt, truncated or not a torch file ({one_line(e)}); "
                              f"{fallback_hint(p)}") from None
    except Exception as e:  # pickle errors under weights_only have many types
        raise CheckpointError(f"cannot read checkpoint {p}: not a torch checkpoint file ({type(e).__name__}); "
                              f"pass a .pt file written by train.py") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a sagan checkpoint (no '{FORMAT}' tag); pass a file written by train.py")
    if not isinstance(ckpt.get("version"), int) or ckpt["version"] > VERSION:
        raise CheckpointError(f"{p} has checkpoint version {short_repr(ckpt.get('version'))}, not one this sagan reads "
                              f"(<= {VERSION}); upgrade sagan")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{p} is incomplete: missing {', '.join(missing)}; {fallback_hint(p)}")
    ckpt["path"] = str(p)
    _check_fields(ckpt, p)
    if verify:
        check_finite(ckpt, p)
    return ckpt


def _malformed(p: Path, field: str, value: Any, expected: str) -> CheckpointError:
    # bounded whatever the value: weights_only loads shared references, a few KB can nest 2**60 leaves
    shown = (f"a dict with keys {short_repr(sorted(short_repr(k, 30) for k in list(value)[:6]), 60)}"
             if isinstance(value, dict) else short_repr(value, 60))
    return CheckpointError(f"checkpoint {p}: field {field} is malformed ({shown}; expected "
                           f"{expected}); {fallback_hint(p)}")


def _is_state_dict(v: Any) -> bool:
    return isinstance(v, dict) and bool(v) and all(isinstance(k, str) and torch.is_tensor(t) for k, t in v.items())


def _check_fields(ckpt: dict, p: Path) -> None:
    """The fields every use needs: step, config and the networks."""
    step = ckpt["step"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise _malformed(p, "step", step, "an integer >= 0")
    if not isinstance(ckpt["config"], dict):
        raise _malformed(p, "config", ckpt["config"], "a config mapping")
    for key in ("G", "D"):
        if not _is_state_dict(ckpt[key]):
            raise _malformed(p, key, ckpt[key], "a state dict of tensors")
    if ckpt["G_ema"] is not None and not _is_state_dict(ckpt["G_ema"]):
        raise _malformed(p, "G_ema", ckpt["G_ema"], "a state dict of tensors or None")
    names = ckpt.get("class_names")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise _malformed(p, "class_names", names, "a list of strings or None")
    if not isinstance(ckpt.get("meta", {}), dict):
        raise _malformed(p, "meta", ckpt["meta"], "a dict")


def check_training_state(ckpt: dict) -> None:
    """The fields a resume needs (optimizer states, RNG states, data position): well-formed or None."""
    p = Path(ckpt["path"])
    for key in ("opt_G", "opt_D"):
        v = ckpt[key]
        if v is not None and not (isinstance(v, dict) and isinstance(v.get("state"), dict)
                                  and isinstance(v.get("param_groups"), list)):
            raise _malformed(p, key, v, "an optimizer state dict or None")
    rng = ckpt["rng"]
    if rng is not None:
        ok = (isinstance(rng, dict) and torch.is_tensor(rng.get("torch")) and isinstance(rng.get("python"), list)
              and len(rng["python"]) == 3 and isinstance(rng.get("numpy"), list) and len(rng["numpy"]) == 5)
        if not ok:
            raise _malformed(p, "rng", rng, "RNG states as train.py writes them, or None")
    data = ckpt["data"]
    if data is not None:
        ok = isinstance(data, dict) and all(isinstance(data.get(k), int) and data[k] >= 0 for k in ("epoch", "index"))
        if not ok:
            raise _malformed(p, "data", data, "{'epoch': int, 'index': int, ...} or None")


def _first_non_finite(prefix: str, obj: Any) -> str | None:
    if torch.is_tensor(obj):
        return prefix if obj.is_floating_point() and not bool(torch.isfinite(obj).all()) else None
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for k, v in items:
        bad = _first_non_finite(f"{prefix}.{k}" if prefix else str(k), v)
        if bad is not None:
            return bad
    return None


def check_finite(ckpt: dict, p: Path) -> None:
    """Refuse weights (and optimizer moments) with NaN/Inf: sampling them gives black images, silently."""
    for key in ("G", "G_ema", "D", "opt_G", "opt_D"):
        if ckpt.get(key) is None:
            continue
        bad = _first_non_finite(key, ckpt[key])
        if bad is not None:
            raise CheckpointError(f"checkpoint {p} is unusable: tensor {bad} holds NaN/Inf values (a diverged or "
                                  f"damaged run); {fallback_hint(p)}")


def checkpoint_config(ckpt: dict[str, Any]) -> Config:
    try:
        return Config.from_dict(ckpt["config"], where=f"config stored in {ckpt.get('path', 'checkpoint')}")
    except ConfigError as e:
        raise CheckpointError(str(e)) from None


def check_same_model(cfg: Config, ckpt_cfg: Config, path: str, skip: Collection[str] = ()) -> None:
    a, b = cfg.to_dict()["model"], ckpt_cfg.to_dict()["model"]
    diff = [f"model.{k}={b[k]!r} there vs {a[k]!r} here" for k in a if k not in skip and a[k] != b.get(k)]
    if diff:
        raise CheckpointError(f"checkpoint {path} is from another architecture ({'; '.join(diff[:3])}); resume without "
                              f"--config (the checkpoint's config is used), or start a new run")


def check_same_classes(ckpt: dict, dataset, cfg: Config) -> str | None:
    """A resume on other data, saying what differs (the checkpoint's classes against the data's): another
    class count is refused; the same count under other names continues, with the returned warning."""
    theirs, ours = ckpt.get("class_names"), list(dataset.class_names)
    n = len(theirs) if theirs is not None else checkpoint_config(ckpt).model.num_classes
    if (theirs is None and n == len(ours)) or theirs == ours:
        return None
    theirs_text = _classes_text(theirs) if theirs is not None else f"{n} classes (names not stored)"
    where = cfg.data.path or "the built-in demo dataset"
    differs = f"the checkpoint's {theirs_text} vs the data's {_classes_text(ours)}"
    if n != len(ours):
        raise CheckpointError(f"checkpoint {ckpt['path']} was trained on other classes than {where} has: {differs}; "
                              "resume on the data it was trained on, or start a new run")
    return (f"warning: {where} names its classes differently from the checkpoint ({differs}); continuing with the "
            "data's classes by index (label i is the data's i-th class)")


def _classes_text(names: list[str]) -> str:
    shown = ", ".join(printable(n)[:24] for n in names[:4]) + (", ..." if len(names) > 4 else "")
    return f"{len(names)} classes ({shown})"


def load_state(module: torch.nn.Module, state: dict[str, Any], what: str) -> None:
    """``load_state_dict`` with a one-line error when the architecture does not match."""
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{what} does not fit the network built from its config ({one_line(e, 200)})") from None


def scalar_state(state: Any, keys: tuple[str, ...], what: str) -> dict[str, torch.Tensor]:
    """The finite scalar tensors ``keys`` of a stored state (an augmentation's, a regulariser's), as fp32
    clones; ValueError naming the first bad one."""
    out = {}
    for k in keys:
        v = state.get(k) if isinstance(state, dict) else None
        if not (torch.is_tensor(v) and v.numel() == 1 and v.is_floating_point() and bool(torch.isfinite(v).all())):
            raise ValueError(f"{what} state {k} must be a finite scalar tensor, got {short_repr(v, 40)}")
        out[k] = v.detach().float().reshape(()).clone()
    return out


def step_files(ckpt_dir: Path) -> dict[int, Path]:
    """``{step: path}`` of the ``step_NNNNNNN.pt`` files in ``ckpt_dir``."""
    out = {}
    for p in ckpt_dir.glob("step_*.pt"):
        m = STEP_FILE.search(p.name)
        if m:
            out[int(m.group(1))] = p
    return out


def __getattr__(name: str):
    """``sagan.checkpoint.load_generator`` / ``load_discriminator``, documented before they moved to
    :mod:`sagan.models.loading` (where the networks are built): the file format does not import the
    networks, so the old names resolve on first use."""
    if name in ("load_generator", "load_discriminator"):
        return getattr(importlib.import_module("sagan.models.loading"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
