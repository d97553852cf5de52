"""Checkpoint files: one ``.pt`` file per snapshot, written atomically, loadable with ``weights_only=True``.

Layout of a checkpoint (a plain dict, nothing pickled but tensors and builtins; the one place that
builds it is :func:`training_payload`):

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

import random
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import Config
from .errors import CheckpointError, ConfigError, one_line, short_repr
from .io import atomic_write, link_atomic

FORMAT = "sagan-checkpoint"
VERSION = 1
REQUIRED_KEYS = ("step", "config", "G", "D", "G_ema", "opt_G", "opt_D", "rng", "data")
CHECKPOINT_DIR, LAST, BEST = "checkpoints", "last.pt", "best.pt"
STEP_FILE = re.compile(r"step_(\d+)\.pt$")


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
            if cand.is_file():
                return cand
        if which == BEST:
            raise CheckpointError(f"no best checkpoint in {p} (checkpoints/best.pt is written when train.fid_every "
                                  f"evaluations run); use {p} for the last one")
        raise CheckpointError(f"no checkpoint in {p} (looked for checkpoints/last.pt and last.pt); pass a .pt file")
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist; check the path")
    return p


def _fallback_hint(p: Path) -> str:
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
        raise CheckpointError(f"checkpoint {p} is corrupt ({one_line(e)}); {_fallback_hint(p)}") from None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", verify: bool = True) -> dict[str, Any]:
    """Load and validate a checkpoint; every failure is a one-line :class:`CheckpointError`.

    ``verify``: check the zip CRCs (a full read of the file) and that every weight is finite.
    """
    p = resolve_checkpoint(path)
    if verify and zipfile.is_zipfile(p):
        verify_zip(p)
    try:  # unverified reads (a status, a step) map the file instead of reading every weight
        ckpt = torch.load(p, map_location=map_location, weights_only=True, mmap=not verify and zipfile.is_zipfile(p))
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read checkpoint {p}: corrupt, truncated or not a torch file ({one_line(e)}); "
                              f"{_fallback_hint(p)}") from None
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
        raise CheckpointError(f"{p} is incomplete: missing {', '.join(missing)}; {_fallback_hint(p)}")
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
                           f"{expected}); {_fallback_hint(p)}")


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
                                  f"damaged run); {_fallback_hint(p)}")


def checkpoint_config(ckpt: dict[str, Any]) -> Config:
    try:
        return Config.from_dict(ckpt["config"], where=f"config stored in {ckpt.get('path', 'checkpoint')}")
    except ConfigError as e:
        raise CheckpointError(str(e)) from None


def load_generator(path: str | Path, ema: bool = True, device: str | torch.device = "cpu"):
    """Build the generator of a checkpoint in eval mode.

    Returns ``(G, cfg, ckpt)``; ``ema=False`` takes the raw generator, ``ema=True`` the EMA one when the
    checkpoint has it (else the raw one, with ``ckpt["used_ema"] = False``).
    """
    from .models.networks import Generator

    ckpt = load_checkpoint(path)
    cfg = checkpoint_config(ckpt)
    G = Generator.from_config(cfg)
    use_ema = ema and ckpt.get("G_ema") is not None
    state = ckpt["G_ema"] if use_ema else ckpt["G"]
    load_state(G, state, f"{'G_ema' if use_ema else 'G'} of {ckpt['path']}")
    ckpt["used_ema"] = use_ema
    return G.to(device).eval(), cfg, ckpt


def load_state(module: torch.nn.Module, state: dict[str, Any], what: str) -> None:
    """``load_state_dict`` with a one-line error when the architecture does not match."""
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{what} does not fit the network built from its config ({one_line(e, 200)})") from None


# --------------------------------------------------------------------------------------------------
# RNG states as plain lists (torch.load(weights_only=True), PITFALLS "Checkpoint loading")


def rng_state() -> dict[str, Any]:
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "python": [version, list(mt), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }


def set_rng_state(state: dict[str, Any], where: str = "checkpoint") -> None:
    try:
        torch.set_rng_state(state["torch"])
        if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        version, mt, gauss = state["python"]
        random.setstate((version, tuple(mt), gauss))
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{where}: the stored RNG states cannot be restored ({one_line(e, 80)}); the file is "
                              "damaged or not written by train.py") from None


# --------------------------------------------------------------------------------------------------
# the training payload and the checkpoint folder


def training_payload(*, step: int, cfg: Config, G, D, ema, opt_G, opt_D, rng: dict, data: dict,
                     class_names: list[str] | None, meta: dict) -> dict[str, Any]:
    """The checkpoint of a training run (the schema of the module docstring)."""
    return {
        "step": step, "config": cfg.to_dict(),
        "G": G.state_dict(), "D": D.state_dict(), "G_ema": ema.state_dict() if ema is not None else None,
        "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(),
        "rng": rng, "data": data, "class_names": class_names, "meta": meta,
    }


def restore_training_state(ckpt: dict, gan) -> None:
    """Load a training checkpoint into a :class:`sagan.training.step.GANStep` (weights, EMA, optimiser states);
    ``None`` optimiser states (a converted checkpoint) leave fresh ones, no EMA starts the EMA from G."""
    where = ckpt["path"]
    load_state(gan.G_raw, ckpt["G"], f"G of {where}")
    load_state(gan.D_raw, ckpt["D"], f"D of {where}")
    if gan.ema is not None:
        if ckpt["G_ema"] is not None:
            load_state(gan.ema.ema, ckpt["G_ema"], f"G_ema of {where}")
        else:
            gan.ema.ema.load_state_dict(gan.G_raw.state_dict())
    for opt, key in ((gan.opt_G, "opt_G"), (gan.opt_D, "opt_D")):
        if ckpt[key] is None:
            continue
        try:
            opt.load_state_dict(ckpt[key])
        except (ValueError, KeyError, RuntimeError, TypeError) as e:
            raise CheckpointError(f"{key} of {where} does not fit the networks ({one_line(e, 160)})") from None


def restore_rng(ckpt: dict, rank: int = 0) -> None:
    """This process's global RNG states from a checkpoint (nothing when it has none)."""
    if ckpt["rng"] is not None:
        per = ckpt["rng"].get("per_process") or []
        set_rng_state(per[rank] if rank < len(per) else ckpt["rng"], f"checkpoint {ckpt['path']}")


def step_files(ckpt_dir: Path) -> dict[int, Path]:
    """``{step: path}`` of the ``step_NNNNNNN.pt`` files in ``ckpt_dir``."""
    out = {}
    for p in ckpt_dir.glob("step_*.pt"):
        m = STEP_FILE.search(p.name)
        if m:
            out[int(m.group(1))] = p
    return out


def prune_checkpoints(ckpt_dir: Path, keep: int) -> None:
    """Keep the ``keep`` newest ``step_*.pt`` files (``last.pt`` and ``best.pt`` are never pruned).
    Called only after the new file is complete (PITFALLS: accelerate deletes first)."""
    steps = sorted(step_files(ckpt_dir).items())
    for _, p in steps[: max(0, len(steps) - keep)]:
        p.unlink(missing_ok=True)


def drop_abandoned_branch(ckpt_dir: Path, resumed_step: int, resumed_path: Path | None = None) -> list[str]:
    """After a resume from ``resumed_step`` (``resumed_path``), remove the step files newer than it (a branch
    the run has left: they would be mistaken for the current run), point ``last.pt`` at the resumed file
    if it was on that branch, and rename a ``best.pt`` from that branch to ``abandoned_best_step_N.pt``
    rather than delete a possibly good model. Returns what was done."""
    done = []
    for step, p in sorted(step_files(ckpt_dir).items()):
        if step > resumed_step:
            p.unlink(missing_ok=True)
            done.append(f"removed {p.name}")
    last = ckpt_dir / LAST
    if resumed_path is not None and last.is_file() and not last.samefile(resumed_path):
        if (_stored_step(last) or 0) > resumed_step:
            link_atomic(resumed_path, last)
            done.append(f"last.pt now points at step {resumed_step}")
    best = ckpt_dir / BEST
    best_step = _stored_step(best) if best.is_file() else None
    if best_step is not None and best_step > resumed_step:
        target = ckpt_dir / f"abandoned_best_{step_file_name(best_step)}"
        best.replace(target)
        done.append(f"renamed best.pt (step {best_step}) to {target.name}")
    return done


def _stored_step(path: Path) -> int | None:
    """The ``step`` of a checkpoint, read through a memory map (not a GB of weights); None if unreadable."""
    try:
        step = torch.load(path, map_location="cpu", weights_only=True, mmap=True)["step"]
    except Exception:  # noqa: BLE001  (an unreadable file is not ours to judge here)
        return None
    return step if isinstance(step, int) else None


def write_training_checkpoint(ckpt_dir: Path, step: int, payload: dict, keep: int) -> Path:
    """``step_NNNNNNN.pt``, then ``last.pt`` as a hard link to it, then pruning."""
    path = save_checkpoint(ckpt_dir / step_file_name(step), payload)
    link_atomic(path, ckpt_dir / LAST)
    prune_checkpoints(ckpt_dir, keep)
    return path


def write_best(ckpt_dir: Path, step: int, payload: dict | None) -> Path:
    """``best.pt``: a link to this step's file when there is one (no second write), else ``payload``."""
    step_path = ckpt_dir / step_file_name(step)
    best = ckpt_dir / BEST
    if step_path.is_file():
        link_atomic(step_path, best)
    else:
        save_checkpoint(best, payload)
    return best
