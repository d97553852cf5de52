"""Running an experiment: every variant with the same seed, budget and evaluation cadence, one run
directory each under the experiment directory, resumable.

    OUT/experiment.json     the settings (a re-run must use the same ones; --steps may grow) and variants
    OUT/reference.npz       reference statistics of the data, computed once (unless --ref is given)
    OUT/<variant>/          an ordinary run directory (train.py's): checkpoints, metrics.jsonl, log, events
    OUT/<variant>.seed<i>/  with ``--seeds N``: the variant again with ``train.seed`` + i (i = 1 .. N-1)

A finished variant (its last checkpoint at --steps) is skipped, an interrupted one resumes exactly from
its last checkpoint (one per evaluation), one killed before its first checkpoint starts again.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from ..checkpoint import load_checkpoint
from ..config import load_config
from ..data import dataset_from_config
from ..data.stream import open_training_data
from ..errors import UserError
from ..io import check_writable, write_text_atomic
from ..metrics.session import dataset_reference
from ..rundir import has_checkpoint, is_unstarted_run
from ..training import Trainer
from ..training.loop import make_accelerator
from .definitions import build_variant, select_variants

SETTINGS_FILE, REFERENCE_FILE = "experiment.json", "reference.npz"
FIXED_SETTINGS = ("experiment", "base", "data", "eval_every", "num_samples", "ref")  # curves must stay comparable
EVAL_METRICS = ("fid", "is", "kid")
# experiments that evaluate more: the objectives differ in mode coverage, so recall and coverage (Naeem et al.
# 2020) join FID; the BigGAN ablation (issue 29) reports precision / recall / density / coverage too
_PRDC = ("precision", "recall", "density", "coverage")
EXPERIMENT_METRICS = {"objectives": EVAL_METRICS + _PRDC, "biggan_ablation": EVAL_METRICS + _PRDC}


def _say(msg: str, main: bool = True) -> None:
    if main:
        from tqdm.auto import tqdm

        tqdm.write(msg, file=sys.stderr)


def read_settings(path: Path) -> dict:
    """``experiment.json``, or a one-line error when it is damaged."""
    try:
        record = json.loads(path.read_text())
        if not isinstance(record.get("settings"), dict) or not isinstance(record.get("variants"), list):
            raise ValueError("no settings/variants")
    except (ValueError, AttributeError, OSError) as e:
        raise UserError(f"{path} is not a valid experiment file ({e}); remove it to start the experiment afresh") from None
    return record


def record_settings(out: Path, settings: dict, variants: list[str], main: bool,
                    fixed: tuple[str, ...] = FIXED_SETTINGS) -> dict:
    """Write (or check against) ``experiment.json``; returns the recorded settings. ``fixed``: the
    settings a re-run must keep."""
    path = out / SETTINGS_FILE
    if path.is_file():
        old = read_settings(path)
        for key in fixed:
            if old["settings"].get(key) != settings.get(key):
                raise UserError(f"{out} holds experiment {old['settings'].get('experiment')!r} run with {key}="
                                f"{old['settings'].get(key)!r}, not {settings.get(key)!r}; use the same settings "
                                f"to continue it, or another --outdir")
        variants = list(dict.fromkeys(old.get("variants", []) + variants))
    record = {"settings": settings, "variants": variants, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if main:
        write_text_atomic(path, json.dumps(record, indent=2) + "\n")
    return record


def ensure_reference(out: Path, cfg, inception_weights: str | None, accelerator) -> Path:
    """``OUT/reference.npz`` of the experiment's data under the evaluation protocol, computed once. ``cfg``
    is a variant's config after :func:`open_training_data` (resolution and classes from the data)."""
    ref = out / REFERENCE_FILE
    if ref.is_file():
        return ref
    d = cfg.data
    _say(f"computing reference statistics of {d.path or 'the built-in demo dataset'} into {ref} (once)",
         accelerator.is_main_process)
    dataset = dataset_from_config(cfg, hflip=False, uint8=True)
    dataset_reference(dataset, ref, source=str(d.path or "demo"), inception_weights=inception_weights,
                      resize=cfg.train.fid_resize, device=accelerator.device, accelerator=accelerator)
    accelerator.wait_for_everyone()
    return ref


def seed_runs(variant: str, seeds: int) -> list[tuple[str, int]]:
    """``(run folder name, seed offset)`` of each of a variant's ``seeds`` runs: the first in
    ``OUT/<variant>``, the others beside it in ``OUT/<variant>.seed<i>``."""
    return [(variant, 0)] + [(f"{variant}.seed{i}", i) for i in range(1, seeds)]


def variant_status(run: Path, steps: int) -> tuple[str, int]:
    """``("finished" | "stopped" | "not started", step)`` of a variant's run directory."""
    if not has_checkpoint(run):
        return "not started", 0
    step = load_checkpoint(run, verify=False)["step"]
    return ("finished" if step >= steps else "stopped"), step


def run_experiment(experiment: str, outdir: str | Path, *, steps: int, eval_every: int, num_samples: int,
                   base: str = "demo", data: str | None = None, variants: str | None = None, ref: str | None = None,
                   inception_weights: str | None = None, progress: bool = True,
                   seeds: int = 1) -> tuple[int | None, bool]:
    """Train every chosen variant of ``experiment`` (``seeds`` runs each); returns the signal number if one
    stopped the run (else None) and whether this is the main process (the one that writes reports)."""
    out = Path(outdir)
    chosen = select_variants(experiment, variants)
    load_config(base)  # a bad --base fails before anything is written
    check_writable(out, "--outdir")
    settings = {"experiment": experiment, "base": base, "data": data, "steps": steps, "eval_every": eval_every,
                "num_samples": num_samples, "ref": ref, "seeds": seeds}
    overrides = {"train.max_steps": steps, "train.fid_every": eval_every, "train.fid_num_samples": num_samples,
                 "train.checkpoint_every": eval_every, "train.sample_every": eval_every,
                 "train.eval_metrics": list(EXPERIMENT_METRICS.get(experiment, EVAL_METRICS)), "data.path": data}
    first = build_variant(experiment, chosen[0], base, overrides).config or load_config(base)
    acc = make_accelerator(first.train.mixed_precision)
    main = acc.is_main_process
    record_settings(out, settings, chosen, main)
    # the presets' resolution and classes are defaults the data replaces (as train.py does)
    _, first = open_training_data(first, pinned=())
    overrides["data.ref_stats"] = str(Path(ref).resolve()) if ref else str(ensure_reference(out, first,
                                                                                              inception_weights, acc))
    for run_name, cfg in variant_runs(experiment, chosen, base, overrides, seeds, main):
        stopped = _run_one(cfg=cfg, run=out / run_name, label=run_name, steps=steps, eval_every=eval_every,
                           inception_weights=inception_weights, progress=progress, main=main)
        if stopped is not None:
            return stopped, main
    return None, main


def variant_runs(experiment: str, chosen: list[str], base: str, overrides: dict, seeds: int, main: bool):
    """``(run folder name, config)`` of every seed of every chosen variant that ``base`` can run, in order;
    a variant's placement notes, or that it is skipped, are said once."""
    for name in chosen:
        variant = build_variant(experiment, name, base, overrides)
        for note in variant.notes:
            _say(f"[{name}] {note}", main)
        if variant.config is None:
            _say(f"[{name}] skipped", main)
            continue
        for run_name, offset in seed_runs(name, seeds):
            yield run_name, variant.config.replace(train={"seed": variant.config.train.seed + offset})


def _run_one(cfg, run: Path, label: str, steps: int, eval_every: int, inception_weights, progress: bool,
             main: bool) -> int | None:
    """Train one run of a variant to ``steps`` (skip it when finished, resume it when stopped); the signal
    number that stopped it, or None."""
    status, step = variant_status(run, steps)
    if status == "finished":
        _say(f"[{label}] finished at step {step}; skipping", main)
        return None
    _say(f"[{label}] {'resuming at step ' + str(step) if status == 'stopped' else 'starting'} "
         f"({steps} steps, evaluation every {eval_every}, seed {cfg.train.seed})", main)
    trainer = Trainer(cfg, outdir=run, resume=run if status == "stopped" else None, pinned=(),
                      inception_weights=inception_weights, progress=progress,
                      restart=run if is_unstarted_run(run) else None)
    trainer.run()
    return trainer.stopped_by


def mean_std(values: list[float]) -> dict:
    """{mean, std (sample standard deviation; None for one value), n}."""
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()) if len(v) else None, "std": float(v.std(ddof=1)) if len(v) > 1 else None,
            "n": len(v)}
