"""The SAGAN training loop: wiring the networks, data, checkpoints, logs and evaluations together, and
the loop itself.

One step (``step`` counts completed G updates, as the paper's "iterations") is a :class:`GANStep` call;
the loop around it logs, samples, evaluates and saves at their cadences.

Determinism and exact resume. What the training draws does not come from global RNGs: the data order
is a permutation seeded by ``(seed, epoch)``, horizontal flips are a hash of ``(seed, epoch, index)``
(:mod:`sagan.data.base`), the loader's worker seeds come from ``(seed, rank)``, and the latents of step
``s`` on process ``r`` come from a generator seeded by ``(seed, s, r)``. A checkpoint therefore only
needs the weights, EMA, optimizer states and the data position to continue exactly: on CPU, 10 steps +
resume to 20 equals 20 steps bit for bit. Global RNG states (torch, CUDA, python, numpy; one set per
process) are saved and restored as well, last in the set-up, for anything a user adds. A resume
applies the current config's optimiser hyper-parameters (``--set train.lr_d=...`` takes effect) and
says so.

Host syncs happen at log steps (averaged statistics, which also catches NaN/Inf), before checkpoints,
sample grids and evaluations, and under several processes at the stop check (every min(log_every, 10)
steps).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Collection

import numpy as np
import torch

from ..checkpoint import (CHECKPOINT_DIR, LAST, check_same_classes, check_same_model, check_training_state,
                          checkpoint_config, load_checkpoint, step_file_name)
from .startup_notes import data_notes, device_notes, resume_notes, split_note
from ..threads import chosen_note, data_workers
from .run_state import (restore_rng, restore_training_state, rng_state, small_data_state, training_payload,
                          write_best, write_training_checkpoint)
from ..config import DATA_DERIVED, Config
from ..data.batch_plan import BatchPlan
from ..data.stream import DataStream, EpochBatchSampler, open_training_data
from .dist import on_main
from ..errors import UserError, one_line
from ..io import printable
from ..sampling.ema_check import averaging_note
from .step import GANStep
from .objective import describe as describe_objective
from ..models.networks import Discriminator, Generator, count_parameters
from .monitor import Monitor, RecentSteps, StopRequest
from .lineage import ROOT, Reconciliation, lineage_of, reconcile_history
from ..rundir import METRICS_FILE, create_run_dir, lock_run_dir, prepare_run_dir, resolve_outdir, run_name
from .watch import RunWatch
from .trackers import external_trackers

__all__ = ["EpochBatchSampler", "Trainer", "TrainingDiverged", "train"]


class TrainingDiverged(UserError):
    """A loss or a weight became NaN/Inf; the last good checkpoint is kept."""


def make_accelerator(mixed_precision: str, log_with: list[str] | None = None):
    """The run's accelerator; ``log_with``: the experiment trackers accelerate drives (sagan.training.trackers)."""
    from accelerate import Accelerator

    # several processes without GPUs (torchrun / `accelerate launch --multi_gpu` on a CPU machine): accelerate
    # only picks its multi-CPU (gloo) mode when asked for the CPU explicitly
    cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    try:
        return Accelerator(mixed_precision=mixed_precision, cpu=cpu, log_with=log_with or None)
    except (ValueError, RuntimeError) as e:
        raise UserError(f"cannot set up accelerate with mixed_precision={mixed_precision!r} here "
                        f"({one_line(e, 160)}); use --mixed-precision bf16 or no") from None


def open_run_data(cfg: Config, pinned: Collection[str], resuming: bool):
    """The dataset a run trains on and the config it completes (:func:`sagan.data.stream.open_training_data`):
    a resumed run's checkpoint fixes the architecture, so only its resolution is pinned (its classes are
    compared with the data's by name)."""
    return open_training_data(cfg, ("resolution",) if resuming else pinned)


class Trainer:
    def __init__(self, cfg: Config, outdir: str | Path | None = None, resume: str | Path | dict | None = None,
                 pinned: Collection[str] = DATA_DERIVED, inception_weights: str | None = None,
                 progress: bool = True, dataset=None, restart: Path | None = None):
        self._lock = None
        try:
            self._setup(cfg=cfg, outdir=outdir, resume=resume, pinned=pinned, inception_weights=inception_weights,
                        progress=progress, dataset=dataset, restart=restart)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Give up the run directory's lock (also done by the kernel when the process ends in any way)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # ---- set-up: one method per step, in the order they run -------------------------------------------

    def _setup(self, cfg, outdir, resume, pinned, inception_weights, progress, dataset, restart) -> None:
        """The set-up, one step per call; each step's docstring says what it needs of the steps before it. The
        data comes before the networks (it completes the config: resolution, classes); the global RNG states
        are restored last, after everything that draws while setting up."""
        ckpt = self._read_checkpoint(cfg, resume)
        self._start_accelerator(cfg)
        self._open_data(cfg, pinned, dataset, ckpt)
        self._open_run_folder(outdir, ckpt, restart, progress)
        self._build()
        self._restore(ckpt)
        self._open_stream(ckpt)
        self._reconcile(ckpt, restart)
        self._start_watch(ckpt, inception_weights)
        self._startup_notes = self._announcement(ckpt)
        self._restore_rng(ckpt)

    def _read_checkpoint(self, cfg: Config, resume) -> dict | None:
        """The checkpoint to resume (None for a new run), checked against ``cfg`` in what the data cannot change
        (before the data is opened: a misleading data error otherwise)."""
        ckpt = resume if isinstance(resume, dict) else (load_checkpoint(resume) if resume is not None else None)
        if ckpt is not None:
            check_training_state(ckpt)
            check_same_model(cfg, checkpoint_config(ckpt), ckpt["path"], DATA_DERIVED if cfg.data.path else ())
        return ckpt

    def _start_accelerator(self, cfg: Config) -> None:
        """The accelerator (with the experiment trackers it drives) and this process's place among the others."""
        self.acc = acc = make_accelerator(cfg.train.mixed_precision, external_trackers(cfg.train.log_with))
        self.main, self.world, self.rank, self.device = acc.is_main_process, acc.num_processes, acc.process_index, acc.device

    def _open_data(self, cfg: Config, pinned: Collection[str], dataset, ckpt: dict | None) -> None:
        """The dataset and the config it completes (resolution and classes from the data where not pinned; a
        checkpoint fixes the architecture, its classes compared with the data's by name), and the run's
        :class:`~sagan.data.batch_plan.BatchPlan`. Needs the checkpoint and the processes (the steps before).
        ``dataset``: one already opened for this config (train.py --grad-accum auto, benchmarks)."""
        self.dataset, cfg = (dataset, cfg) if dataset is not None else open_run_data(cfg, pinned, ckpt is not None)
        self._classes_note = None
        if ckpt is not None:
            self._classes_note = check_same_classes(ckpt, self.dataset, cfg)
            check_same_model(cfg, checkpoint_config(ckpt), ckpt["path"])
        self.cfg = cfg
        self.class_names = list(self.dataset.class_names)
        self.plan = self._batch_plan()

    def _open_run_folder(self, outdir, ckpt: dict | None, restart: Path | None, progress: bool) -> None:
        """The run directory (decided and checked on the main process, shared with the others, locked) and its
        log (the monitor). Needs the final config and the class names (the data)."""
        self.outdir, self._removed = on_main(self.acc, self._choose_outdir, outdir, ckpt["path"] if ckpt else None,
                                             restart)
        self.ckpt_dir = self.outdir / CHECKPOINT_DIR
        self.monitor = Monitor(self.cfg, self.outdir, self.main, self.class_names, progress, accelerator=self.acc)
        self.say = self.monitor.say

    def _build(self) -> None:
        """The networks, from ``train.seed`` before anything else draws (the same initial weights on every
        process), and the GAN step (optimisers, EMA, augmentation, regularisers) on the run's batch plan."""
        t = self.cfg.train
        torch.manual_seed(t.seed)  # same initial weights on every process (DDP also broadcasts rank 0's)
        # python's and numpy's global RNGs too, so that a straight run and a killed-and-resumed one agree in
        # every byte of their checkpoints (a resume restores all three)
        random.seed(t.seed)
        np.random.seed(t.seed)
        G, D = Generator.from_config(self.cfg), Discriminator.from_config(self.cfg)
        fmt = torch.channels_last if t.channels_last else torch.preserve_format
        # channels_last before GANStep copies G for its EMA, so that the copy has the same layout
        G, D = G.to(self.device, memory_format=fmt), D.to(self.device, memory_format=fmt)
        self.gan = GANStep(self.cfg, G, D, self.acc, plan=self.plan)
        self.step, self.images_seen = 0, 0
        self.hparam_changes: list[str] = []
        self.recent = RecentSteps(self.device)

    def _restore(self, ckpt: dict | None) -> None:
        """The checkpoint's state in the GAN step (weights, EMA, optimisers, small-data states; the config's
        optimiser settings at the restored position), then the networks handed to accelerate and its loss
        scaler restored. Needs the GAN step (build). The global RNG states come last (:meth:`_restore_rng`)."""
        if ckpt is not None:
            restore_training_state(ckpt, self.gan)
            self.step = ckpt["step"]
            self.images_seen = int((ckpt.get("meta") or {}).get("images_seen", 0))
            self.hparam_changes = self.gan.apply_hyperparameters(self.images_seen)  # (schedules: at this position)
        self.gan.prepare()
        if ckpt is not None and self.acc.scaler is not None and "scaler" in (ckpt.get("meta") or {}):
            self.acc.scaler.load_state_dict(ckpt["meta"]["scaler"])

    def _open_stream(self, ckpt: dict | None) -> None:
        """This process's data stream: the batch plan's micro-batches of the dataset, at the checkpoint's data
        position. Needs the dataset and the plan (data)."""
        t = self.cfg.train
        data = (ckpt["data"] or {}) if ckpt is not None else {}
        sampler = EpochBatchSampler.for_plan(self.plan, size=len(self.dataset), rank=self.rank, seed=t.seed)
        workers, self._workers_note = data_workers(t.num_workers)  # issue 26: no more workers than cores
        self.data = DataStream(dataset=self.dataset, sampler=sampler, num_workers=workers,
                               pin_memory=self.device.type == "cuda", epoch=data.get("epoch", 0),
                               index=data.get("index", 0))

    def _reconcile(self, ckpt: dict | None, restart: Path | None) -> None:
        """The run's lineage, and on a resume into this run folder (or a restart) the folder brought onto the
        resumed path (:meth:`_reconcile_folder`). Needs the restored step (restore) and the run folder."""
        # a restart (no checkpoint yet) abandons whatever the killed attempt recorded: resume from step 0
        resumed = self.step if (ckpt is not None or restart is not None) else None
        self.lineage = lineage_of(ckpt.get("meta")) if ckpt is not None else [list(e) for e in ROOT]
        self._reconcile_notes = []
        if resumed is not None and (ckpt is None or self._in_run(ckpt)):
            self._reconcile_notes = on_main(self.acc, self._reconcile_folder, ckpt) or []
        self._purge_events = resumed is not None

    def _start_watch(self, ckpt: dict | None, inception_weights: str | None) -> None:
        """The evaluations during training (their state from the checkpoint), on the run's branch. Needs the
        lineage (reconcile)."""
        self.watch = RunWatch(cfg=self.cfg, outdir=self.outdir, accelerator=self.acc, monitor=self.monitor,
                              inception_weights=inception_weights,
                              state=(ckpt.get("meta") or {}).get("watch") if ckpt else None,
                              class_names=self.class_names, branch=self.lineage[-1][1])

    def _announcement(self, ckpt: dict | None) -> list[str]:
        """The start-up notes :meth:`run` says, in this order: the run folder, threads, data and device, the
        classes, the data workers, small data and the objective, the resume (its batch plan against the
        checkpoint's), the reconciled folder, the evaluations, fp16. Needs every step before it."""
        cfg = self.cfg
        notes = [f"removed {len(self._removed)} stale temp file(s) of killed writers"] if self._removed else []
        notes += [chosen_note()] if chosen_note() else []  # train.py --threads / train.threads
        notes += data_notes(cfg, self.dataset, self.class_names) + device_notes(cfg, self.device)
        notes += [self._classes_note] if self._classes_note else []
        notes += [self._workers_note] if self._workers_note else []
        # small data: what D sees and what regularises it
        notes += [self.gan.augment.describe()] if self.gan.augment.active else []
        notes += [reg.describe() for reg in self.gan.regularisers.values()]
        notes += describe_objective(cfg.train)  # penalties and schedules (issue 28)
        if ckpt is not None:
            notes += resume_notes(ckpt, self.step, self.hparam_changes, split_note(self.plan, ckpt))
        notes += self._reconcile_notes
        notes += self.watch.notes
        if cfg.train.mixed_precision == "fp16":
            notes.append("warning: fp16 training of SAGAN often collapses early (loss scaling vs. the "
                         "hinge/SN dynamics); bf16 is the safe choice on hardware that has it")
        return notes

    def _restore_rng(self, ckpt: dict | None) -> None:
        """This process's global RNG states from the checkpoint: last, after everything that draws random
        numbers while setting up (the networks' init, the Inception's for the evaluations)."""
        if ckpt is not None:
            restore_rng(ckpt, self.rank)

    def _choose_outdir(self, outdir, resume_path: str | None, restart: Path | None) -> tuple[Path, list]:
        """The run directory (created with its config, locked, checked writable) and the stale temp files
        removed from it (main process)."""
        out = resolve_outdir(outdir, run_name(self.cfg), resume_path, restart)
        create_run_dir(out, self.cfg)
        self._lock = lock_run_dir(out)
        return out, prepare_run_dir(out, self.cfg)

    def _batch_plan(self) -> BatchPlan:
        """The run's split of the global batch over its processes, refused (one line) when it cannot run:
        torch.compile under several processes, a global batch that does not split evenly, less data than one
        batch."""
        t = self.cfg.train
        if t.compile and self.world > 1:
            raise UserError("train.compile=true under several processes: torch.compile of DDP-wrapped modules with "
                            "parametrizations (spectral norm) fails in PyTorch (pytorch/pytorch#113415); set "
                            "train.compile=false, or compile on one process with --grad-accum")
        plan = BatchPlan.of(self.cfg, self.world)
        if len(self.dataset) < t.batch_size:
            raise UserError(f"the dataset has {len(self.dataset)} images, fewer than one batch ({t.batch_size}); "
                            f"lower --batch-size or use more data")
        return plan

    def _in_run(self, ckpt: dict) -> bool:
        return Path(ckpt["path"]).parent.resolve() == self.ckpt_dir.resolve()

    def _reconcile_folder(self, ckpt: dict | None) -> list[str]:
        """Bring the run folder onto the resumed checkpoint's path (main process, under the lock): what is off
        it is abandoned or dropped, ``last.pt``/``best.pt`` follow it (sagan/training/lineage.py)."""
        meta = (ckpt.get("meta") or {}) if ckpt is not None else {}
        reconciliation = Reconciliation(self.ckpt_dir, self.step, self.lineage, (meta.get("watch") or {}).get("best"),
                                        Path(ckpt["path"]) if ckpt is not None else None)
        self.lineage = reconciliation.lineage
        notes = reconciliation.checkpoints() + reconcile_history(self.outdir / METRICS_FILE, reconciliation)
        if reconciliation.branching:
            notes.append(f"branching off the run at step {self.step}: what lies off this path is kept as "
                         "checkpoints/abandoned_*.pt and metrics_abandoned.jsonl")
        return notes

    # ---- checks -----------------------------------------------------------------------------------

    def _check_finite(self) -> None:
        """Raise :class:`TrainingDiverged` if any step since the start had a NaN/Inf statistic (one sync)."""
        bad = self.recent.first_bad.clone()
        if self.world > 1:
            big = torch.iinfo(torch.long).max
            bad = self.acc.gather(torch.where(bad < 0, big, bad).view(1)).min()
            bad = torch.where(bad == big, -1, bad)
        bad = int(bad)
        if bad < 0:
            return
        last = self.ckpt_dir / LAST
        kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
        raise TrainingDiverged(f"non-finite loss (NaN/Inf) at step {bad}; stopped without saving, {kept}; lower "
                               f"the learning rates (train.lr_g/lr_d) or use bf16 instead of fp16, then --resume")

    # ---- save -------------------------------------------------------------------------------------

    def _payload(self) -> dict | None:
        """The checkpoint payload on the main process (RNG states of every process gathered)."""
        from accelerate.utils import gather_object

        states = gather_object([rng_state()]) if self.world > 1 else [rng_state()]
        self.gan.sample_generator()  # the EMA's BN statistics for its own weights, on every process (issue 26)
        if not self.main:
            return None
        rng = dict(states[0])
        if self.world > 1:
            rng["per_process"] = states
        meta = {"images_seen": self.images_seen, "num_processes": self.world, "torch": str(torch.__version__),
                "time": time.time(), "watch": self.watch.state(), "lineage": self.lineage, **small_data_state(self.gan)}
        if self.acc.scaler is not None:
            meta["scaler"] = self.acc.scaler.state_dict()
        g = self.gan
        return training_payload(step=self.step, cfg=self.cfg, G=g.G_raw, D=g.D_raw, ema=g.ema, opt_G=g.opt_G,
                                opt_D=g.opt_D, rng=rng, data=self.data.state(), class_names=self.class_names, meta=meta)

    def save(self) -> None:
        """``checkpoints/step_NNNNNNN.pt`` (and ``last.pt`` linked to it), atomically, only after checking that
        the weights are finite: a diverged run never overwrites last.pt."""
        self._check_weights()
        payload = self._payload()
        on_main(self.acc, write_training_checkpoint, self.ckpt_dir, self.step, payload, self.cfg.train.keep_checkpoints)

    def save_best(self) -> None:
        """``best.pt``: a link to this step's checkpoint when one was just written, else a new file."""
        if (self.ckpt_dir / step_file_name(self.step)).is_file():
            on_main(self.acc, write_best, self.ckpt_dir, self.step, None)
            return
        self._check_weights()
        on_main(self.acc, write_best, self.ckpt_dir, self.step, self._payload())

    def _check_weights(self) -> None:
        if not self.gan.weights_finite():
            raise TrainingDiverged(f"non-finite weights at step {self.step}; stopped without saving, the last "
                                   f"good checkpoint is {self.ckpt_dir / LAST}; lower the learning rates and --resume")

    # ---- the loop ---------------------------------------------------------------------------------

    def _announce(self) -> None:
        t, m = self.cfg.train, self.cfg.model
        for note in self._startup_notes:
            self.say(note)
        classes = f"{m.num_classes} classes" if m.num_classes else "unconditional (labels unused)"
        on = f" on {printable(Path(self.cfg.data.path).name)}" if self.cfg.data.path else ""
        self.say(f"training {self.cfg.name}{on}: {len(self.dataset)} images, {classes}, {m.resolution}px, "
                 f"global batch {self.plan.global_batch} = {self.plan.micro_batch} x {self.plan.processes} process(es) "
                 f"x {self.plan.accumulation} accumulation, loss {t.loss}, {self.device}, mixed precision {t.mixed_precision}; "
                 f"writing to {self.outdir}")
        n_g, n_d = count_parameters(self.gan.G_raw), count_parameters(self.gan.D_raw)
        self.say(f"parameters: G {n_g / 1e6:.2f}M + D {n_d / 1e6:.2f}M = {(n_g + n_d) / 1e6:.2f}M")
        self.say("sample grid rows: " + ", ".join(self.monitor.captions() or ["unconditional samples"]))

    def run(self) -> Path:
        """Train to ``train.max_steps`` (or until stopped); returns the run directory. After a stop by
        a signal, ``self.stopped_by`` holds its number."""
        t = self.cfg.train
        self.stopped_by: int | None = None
        # under several processes the stop check is a collective (and a host sync): not every step there
        check_stop_every = 1 if self.world == 1 else min(t.log_every, 10)
        self._first_step = self.step + 1
        try:
            self.monitor.start_bar(self.step)
            on_main(self.acc, self.monitor.open, self.step, self._purge_events)
            self._announce()
            with StopRequest(self.acc, self.say) as stop:
                while self.step < t.max_steps:
                    self.step += 1
                    s = self.step
                    started = time.perf_counter()
                    stats = self.gan(s, self.data.next, self.images_seen)
                    self.recent.add(s, stats, t.d_steps * t.batch_size, self.gan.grad_norm_tensors())
                    if t.compile and s == self._first_step:
                        self.say(f"torch.compile: the first step took {time.perf_counter() - started:.1f} s, "
                                 "compilation included")
                    self.images_seen += t.d_steps * t.batch_size
                    self.monitor.pbar.update(1)
                    stop_now = (s % check_stop_every == 0 or s == t.max_steps) and stop.requested()
                    end = s == t.max_steps or stop_now

                    # Log.
                    collapse = (s == 1 or s % t.log_every == 0 or end) and self._log(s)

                    # Sample.
                    if s % t.sample_every == 0 or end:
                        self._check_finite()
                        on_main(self.acc, self.monitor.write_samples, self.gan.sample_generator(), s, self.device)
                        self._note_young_ema(s)

                    # Evaluate.
                    new_best = False
                    if self.watch.due(s, t.max_steps):
                        self._check_finite()
                        new_best, collapse_fid = self.watch.evaluate(self.gan.sample_generator(), s, self.images_seen,
                                                                     self._augment_values())
                        collapse = collapse or collapse_fid

                    # Save.
                    if s % t.checkpoint_every == 0 or end or collapse:
                        self._check_finite()
                        self.save()
                    if new_best:
                        self.save_best()

                    if stop_now or collapse:
                        self.stopped_by = stop.signum if stop_now else None
                        why = "stopped" if stop_now else "stopped on collapse (train.stop_on_collapse)"
                        self.say(f"{why} at step {s}; continue with --resume {self.outdir}")
                        return self.outdir
        except TrainingDiverged as e:
            self.say(f"error: {e}", console=False)  # the CLI prints it
            raise
        finally:
            self.monitor.close()
            self.release()
        self.say(f"done: {self.step} steps; checkpoint {self.ckpt_dir / LAST}")
        return self.outdir

    def _log(self, step: int) -> bool:
        """The log line and scalars of the steps since the last one; returns whether the collapse watch
        asks to stop (same answer on every process: the statistics are reduced)."""
        values, images_per_s = self.recent.take(self.acc)
        self._check_finite()
        extra = {k: values.pop(k) for k in list(values) if k.startswith("grad_norm/")}  # means over the same steps
        extra.update({"lr/G": self.gan.opt_G.param_groups[0]["lr"], "lr/D": self.gan.opt_D.param_groups[0]["lr"],
                      "perf/images_per_s": images_per_s, "progress/images_seen": self.images_seen})
        extra.update(self.gan.log_values())  # schedules and penalties (issue 28): the values the last step used
        for net, module in (("G", self.gan.G_raw), ("D", self.gan.D_raw)):
            for res, attn in module.attn.items():
                extra[f"attention/gamma_{net}_{res}px"] = float(attn.gamma.detach())
        extra.update({f"augment/{k}": v for k, v in self._augment_values().items()})
        if self.device.type == "cuda":
            extra["perf/peak_memory_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        self.monitor.log_step(step, values, extra)
        return self.watch.check_logits(step, values)

    def _note_young_ema(self, step: int) -> None:
        """Once per run: the grid's EMA generator still mixes in old weights (issue 26)."""
        t = self.cfg.train
        if self.gan.ema is None or getattr(self, "_ema_noted", False):
            return
        note = averaging_note(step, t.ema_decay, t.ema_start)
        if note is not None:
            self.say(note + "; sample.py --no-ema draws the raw G (said once)")
            self._ema_noted = True

    def _augment_values(self) -> dict[str, float]:
        """The augmentation's values for the log and metrics.jsonl (ADA: p and its signal r_t)."""
        return self.gan.augment.log_values()


def train(cfg: Config, outdir: str | Path | None = None, resume: str | Path | dict | None = None,
          pinned: Collection[str] = DATA_DERIVED, inception_weights: str | None = None,
          progress: bool = True, restart: Path | None = None) -> Path:
    """Train (or resume) a SAGAN; returns the run directory.

    ``resume``: a checkpoint file, a run directory, or an already loaded checkpoint dict; its step,
    weights, optimizer states and data position are restored. ``pinned``: which of ``model.resolution``
    and ``model.num_classes`` the caller fixed; the others are taken from a real dataset. ``restart``: a
    run directory that stopped before its first checkpoint, to start again from step 0.
    """
    return Trainer(cfg=cfg, outdir=outdir, resume=resume, pinned=pinned, inception_weights=inception_weights,
                   progress=progress, restart=restart).run()

