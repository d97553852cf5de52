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
from .notes import data_notes, device_notes, resume_notes, split_note
from ..threads import chosen_note, data_workers
from .checkpoints import (restore_rng, restore_training_state, rng_state, small_data_state, training_payload,
                          write_best, write_training_checkpoint)
from ..config import DATA_DERIVED, Config
from ..data.stream import DataStream, EpochBatchSampler, open_training_data
from .dist import on_main
from ..errors import UserError, one_line
from ..io import printable
from ..sampling.ema_check import averaging_note
from .step import GANStep
from .objective import describe as describe_objective
from ..models.networks import Discriminator, Generator, count_parameters
from .monitor import Monitor, RecentSteps, StopRequest
from .lineage import ROOT, Resume, lineage_of, reconcile_history
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

    def _setup(self, cfg, outdir, resume, pinned, inception_weights, progress, dataset, restart) -> None:
        ckpt = resume if isinstance(resume, dict) else (load_checkpoint(resume) if resume is not None else None)
        classes_note = None
        if ckpt is not None:
            check_training_state(ckpt)
            # the checkpoint fixes the architecture; its classes are compared with the data's by name below
            pinned = ("resolution",)
            # compare what the data cannot change before opening it (a misleading data error otherwise)
            check_same_model(cfg, checkpoint_config(ckpt), ckpt["path"], DATA_DERIVED if cfg.data.path else ())
        self.acc = acc = make_accelerator(cfg.train.mixed_precision, external_trackers(cfg.train.log_with))
        self.main, self.world, self.rank, self.device = acc.is_main_process, acc.num_processes, acc.process_index, acc.device
        # ``dataset``: an already opened one (benchmarks); it must match cfg.model
        self.dataset, cfg = (dataset, cfg) if dataset is not None else open_training_data(cfg, pinned)
        if ckpt is not None:
            classes_note = check_same_classes(ckpt, self.dataset, cfg)
            check_same_model(cfg, checkpoint_config(ckpt), ckpt["path"])
        self.cfg, t = cfg, cfg.train
        self._check_batch()

        # output directory: decided and checked on the main process, shared with the others
        self.outdir, removed = on_main(acc, self._choose_outdir, outdir, ckpt["path"] if ckpt else None, restart)
        self.ckpt_dir = self.outdir / CHECKPOINT_DIR
        self.class_names = list(self.dataset.class_names)
        self.monitor = Monitor(cfg, self.outdir, self.main, self.class_names, progress, accelerator=acc)
        self.say = self.monitor.say
        self._startup_notes = [f"removed {len(removed)} stale temp file(s) of killed writers"] if removed else []
        self._startup_notes += [chosen_note()] if chosen_note() else []  # train.py --threads / train.threads
        self._startup_notes += data_notes(self.cfg, self.dataset, self.class_names) + device_notes(cfg, self.device)
        self._startup_notes += [classes_note] if classes_note else []

        self._build(ckpt)
        # small data: what D sees and what regularises it
        self._startup_notes += [self.gan.augment.describe()] if self.gan.augment.active else []
        self._startup_notes += [reg.describe() for reg in self.gan.regularisers.values()]
        self._startup_notes += describe_objective(cfg.train)  # penalties and schedules (issue 28)
        self.recent = RecentSteps(self.device)
        # a restart (no checkpoint yet) abandons whatever the killed attempt recorded: resume from step 0
        resumed = self.step if (ckpt is not None or restart is not None) else None
        self.lineage = lineage_of(ckpt.get("meta")) if ckpt is not None else [list(e) for e in ROOT]
        if ckpt is not None:
            self._startup_notes += resume_notes(ckpt, self.step, self.hparam_changes,
                                                 split_note(self.cfg, ckpt, self.gan.per_process, self.world))
        if resumed is not None and (ckpt is None or self._in_run(ckpt)):
            self._startup_notes += on_main(acc, self._reconcile, ckpt) or []
        self.watch = RunWatch(cfg=cfg, outdir=self.outdir, accelerator=acc, monitor=self.monitor,
                              inception_weights=inception_weights,
                              state=(ckpt.get("meta") or {}).get("watch") if ckpt else None,
                              class_names=self.class_names, branch=self.lineage[-1][1])
        self._startup_notes += self.watch.notes
        self._purge_events = resumed is not None
        if t.mixed_precision == "fp16":
            self._startup_notes.append("warning: fp16 training of SAGAN often collapses early (loss scaling vs. the "
                                       "hinge/SN dynamics); bf16 is the safe choice on hardware that has it")
        # last, after everything that draws random numbers while setting up (the Inception's init)
        if ckpt is not None:
            restore_rng(ckpt, self.rank)

    def _choose_outdir(self, outdir, resume_path: str | None, restart: Path | None) -> tuple[Path, list]:
        """The run directory (created with its config, locked, checked writable) and the stale temp files
        removed from it (main process)."""
        out = resolve_outdir(outdir, run_name(self.cfg), resume_path, restart)
        create_run_dir(out, self.cfg)
        self._lock = lock_run_dir(out)
        return out, prepare_run_dir(out, self.cfg)

    def _check_batch(self) -> None:
        t = self.cfg.train
        if t.compile and self.world > 1:
            raise UserError("train.compile=true under several processes: torch.compile of DDP-wrapped modules with "
                            "parametrizations (spectral norm) fails in PyTorch (pytorch/pytorch#113415); set "
                            "train.compile=false, or compile on one process with --grad-accum")
        per_update = t.grad_accum * self.world
        if t.batch_size % per_update:
            raise UserError(f"train.batch_size={t.batch_size} is not divisible by grad_accum x processes = "
                            f"{t.grad_accum} x {self.world}; pick a multiple of {per_update}")
        if len(self.dataset) < t.batch_size:
            raise UserError(f"the dataset has {len(self.dataset)} images, fewer than one batch ({t.batch_size}); "
                            f"lower --batch-size or use more data")

    # ---- setup ------------------------------------------------------------------------------------

    def _build(self, ckpt: dict | None) -> None:
        """Networks, the GAN step (optimisers, EMA), restored state, the data stream."""
        cfg, t = self.cfg, self.cfg.train
        torch.manual_seed(t.seed)  # same initial weights on every process (DDP also broadcasts rank 0's)
        # python's and numpy's global RNGs too, so that a straight run and a killed-and-resumed one agree in
        # every byte of their checkpoints (a resume restores all three)
        random.seed(t.seed)
        np.random.seed(t.seed)
        G, D = Generator.from_config(cfg), Discriminator.from_config(cfg)
        fmt = torch.channels_last if t.channels_last else torch.preserve_format
        # channels_last before GANStep copies G for its EMA, so that the copy has the same layout
        G, D = G.to(self.device, memory_format=fmt), D.to(self.device, memory_format=fmt)
        self.gan = GANStep(cfg, G, D, self.acc)
        self.step, self.images_seen, epoch, index = 0, 0, 0, 0
        self.hparam_changes: list[str] = []
        if ckpt is not None:
            self._restore(ckpt)
            data = ckpt["data"] or {}
            epoch, index = data.get("epoch", 0), data.get("index", 0)
        self.gan.prepare()
        if ckpt is not None and self.acc.scaler is not None and "scaler" in (ckpt.get("meta") or {}):
            self.acc.scaler.load_state_dict(ckpt["meta"]["scaler"])
        sampler = EpochBatchSampler(size=len(self.dataset), global_batch=t.batch_size, micro_batches=t.grad_accum,
                                    rank=self.rank, world=self.world, seed=t.seed)
        workers, workers_note = data_workers(t.num_workers)  # issue 26: no more workers than cores
        self._startup_notes += [workers_note] if workers_note else []
        self.data = DataStream(dataset=self.dataset, sampler=sampler, num_workers=workers,
                               pin_memory=self.device.type == "cuda", epoch=epoch, index=index)

    def _restore(self, ckpt: dict) -> None:
        restore_training_state(ckpt, self.gan)
        self.step = ckpt["step"]
        self.images_seen = int((ckpt.get("meta") or {}).get("images_seen", 0))
        self.hparam_changes = self.gan.apply_hyperparameters(self.images_seen)  # (schedules: at this position)

    def _in_run(self, ckpt: dict) -> bool:
        return Path(ckpt["path"]).parent.resolve() == self.ckpt_dir.resolve()

    def _reconcile(self, ckpt: dict | None) -> list[str]:
        """Bring the run folder onto the resumed checkpoint's path (main process, under the lock): what is off
        it is abandoned or dropped, ``last.pt``/``best.pt`` follow it (sagan/training/lineage.py)."""
        meta = (ckpt.get("meta") or {}) if ckpt is not None else {}
        resume = Resume(self.ckpt_dir, self.step, self.lineage, (meta.get("watch") or {}).get("best"),
                        Path(ckpt["path"]) if ckpt is not None else None)
        self.lineage = resume.lineage
        notes = resume.checkpoints() + reconcile_history(self.outdir / METRICS_FILE, resume)
        if resume.branching:
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
                 f"global batch {t.batch_size} = {self.data.sampler.per_process} x {self.world} process(es) x "
                 f"{t.grad_accum} accumulation, loss {t.loss}, {self.device}, mixed precision {t.mixed_precision}; "
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

