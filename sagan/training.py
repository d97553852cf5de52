"""The SAGAN training loop: hinge loss, TTUR, n D steps per G step, EMA of G, through accelerate.

One step (``step`` counts completed G updates, as the paper's "iterations"):

    d_steps x  D update on one global batch of real images and as many fresh fakes (hinge loss)
    1 x        G update on a fresh batch of fakes (hinge loss), then the EMA update of G

with Adam(lr_g / lr_d, betas (beta1, beta2)) (SAGAN section 4: TTUR, lr 1e-4 / 4e-4, betas (0, 0.9)).

Processes and batches. ``train.batch_size`` is the global batch: each of the P accelerate processes
runs ``grad_accum`` micro-batches of ``batch_size / (P * grad_accum)`` images per update, gradients are
averaged (DDP all-reduce on the last micro-batch only, ``no_sync`` before). The same code runs on one
CPU, one GPU, or many GPUs/nodes under ``accelerate launch``.

DDP and spectral norm: D is called once per micro-batch on ``cat(real, fake)`` rather than twice:
a second call through DDP re-broadcasts D's buffers (SN's ``u``/``v``) in place while the first call's
graph still needs them ("modified by an inplace operation"). D has no batch norm, so one call on the
concatenation computes the same logits. In the G step D is called unwrapped, with its parameters
frozen: no D gradients are needed there, and DDP would wait for gradients that never come.

Determinism and exact resume. Nothing draws from global RNGs: the data order is a permutation seeded by
``(seed, epoch)``, horizontal flips are a hash of ``(seed, epoch, index)`` (:mod:`sagan.data.base`), and
the latents and fake labels of step ``s`` on process ``r`` come from a generator seeded by
``(seed, s, r)``. A checkpoint therefore only needs the weights, EMA, optimizer states and the data
position (epoch, index within the epoch) to continue exactly: on CPU, 10 steps + resume to 20 equals
20 steps bit for bit. Global RNG states (torch, CUDA, python, numpy; one set per process) are saved and
restored as well, for anything a user adds.

Host syncs happen only at log steps (``.item()`` of averaged statistics, which also catches NaN/Inf),
before checkpoints and sample grids.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any, Collection

import numpy as np
import torch
import yaml

from .checkpoint import checkpoint_config, load_checkpoint, load_state, save_checkpoint
from .config import Config
from .data import MANIFEST, open_dataset
from .ema import EMA
from .errors import CheckpointError, UserError
from .losses import d_hinge_loss, g_hinge_loss
from .models import Discriminator, Generator, count_parameters
from .sampling import generate, sample_latents, spread_classes

RUNS_DIR = Path("runs")
STAT_NAMES = ("d_loss_real", "d_loss_fake", "g_loss", "d_logits_real", "d_logits_fake")
GRID_ROWS, GRID_COLS = 10, 8  # sample grid: up to 10 classes (rows) x 8 fixed latents


class TrainingDiverged(UserError):
    """A loss or a weight became NaN/Inf; the last good checkpoint is kept."""


# --------------------------------------------------------------------------------------------------
# run directory


def checkpoint_run_dir(path: str | Path) -> Path:
    """The run directory a checkpoint belongs to (``RUN/checkpoints/x.pt`` -> ``RUN``)."""
    p = Path(path).resolve().parent
    return p.parent if p.name == "checkpoints" else p


def next_run_dir(root: Path, name: str) -> Path:
    """``root/NNNNN-name`` with the next free number (stylegan2-ada's run naming)."""
    ids = [int(m.group(1)) for p in (root.iterdir() if root.is_dir() else []) if (m := re.match(r"(\d{5})-", p.name))]
    return root / f"{max(ids, default=-1) + 1:05d}-{name}"


def resolve_outdir(outdir: str | Path | None, name: str, resume_path: str | None) -> Path:
    """Where the run writes. A resumed run continues in its own directory; any other non-empty directory
    is refused rather than silently mixed with a previous run."""
    if outdir is None:
        return checkpoint_run_dir(resume_path) if resume_path else next_run_dir(RUNS_DIR, name)
    out = Path(outdir)
    if resume_path and out.resolve() == checkpoint_run_dir(resume_path):
        return out
    if out.exists() and not out.is_dir():
        raise UserError(f"--outdir {out} is a file; pick a directory")
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"--outdir {out} already holds files (a previous run?); continue it with --resume {out}, "
                        f"or pick another --outdir")
    return out


# --------------------------------------------------------------------------------------------------
# data: a resumable, sharded sampler


def mix_seed(*ints: int) -> int:
    """A 63-bit seed from several integers (numpy's SeedSequence hashing, so (1, 2) and (2, 1) differ)."""
    return int(np.random.SeedSequence([int(i) for i in ints]).generate_state(2, np.uint32).view(np.uint64)[0] >> 1)


class EpochBatchSampler:
    """This process's micro-batches of one epoch, starting at a sample offset.

    An epoch is a permutation of the dataset seeded by ``(seed, epoch)``, cut into global batches of
    ``global_batch`` images (the remainder is dropped); each global batch is cut into ``micro_batches``
    micro-batches and each of those into ``world`` equal shards, of which this process takes shard
    ``rank``. The loop calls ``set_epoch(epoch, start)`` before iterating, so a resumed run starts at the
    exact sample where the checkpoint left off.
    """

    def __init__(self, size: int, global_batch: int, micro_batches: int, rank: int, world: int, seed: int):
        self.size, self.global_batch, self.micro_batches = size, global_batch, micro_batches
        self.rank, self.world, self.seed = rank, world, seed
        self.per_process = global_batch // (micro_batches * world)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def num_batches(self) -> int:
        """Global batches left in this epoch from ``start``."""
        return max(0, (self.size - self.start) // self.global_batch)

    def __len__(self) -> int:
        return self.num_batches() * self.micro_batches

    def __iter__(self):
        g = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch))
        perm = torch.randperm(self.size, generator=g)
        micro = self.global_batch // self.micro_batches
        for b in range(self.num_batches()):
            batch = perm[self.start + b * self.global_batch:][: self.global_batch]
            for m in range(self.micro_batches):
                shard = batch[m * micro:][:micro][self.rank * self.per_process:][: self.per_process]
                yield shard.tolist()


class DataStream:
    """Global batches (as lists of this process's micro-batches) forever, tracking (epoch, index)."""

    def __init__(self, dataset, sampler: EpochBatchSampler, num_workers: int, pin_memory: bool, epoch: int, index: int):
        self.dataset, self.sampler = dataset, sampler
        self.epoch, self.index = epoch, index
        self.loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=sampler, num_workers=num_workers, pin_memory=pin_memory,
            persistent_workers=num_workers > 0)
        self._it = None

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index, "seed": self.sampler.seed, "size": self.sampler.size}

    def next(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        while self._it is None:
            self.sampler.set_epoch(self.epoch, self.index)
            if self.sampler.num_batches() == 0:  # a resumed position at the very end of an epoch
                self.epoch, self.index = self.epoch + 1, 0
                continue
            # flips of this epoch; set before the workers start loading it (sagan.data.base)
            self.dataset.set_epoch(self.epoch)
            self._it = iter(self.loader)
        batches = [next(self._it) for _ in range(self.sampler.micro_batches)]
        self.index += self.sampler.global_batch
        if self.index + self.sampler.global_batch > self.sampler.size:
            self.epoch, self.index, self._it = self.epoch + 1, 0, None
        return batches


def open_training_data(cfg: Config, pinned: Collection[str]):
    """The training dataset, and the config with resolution / classes taken from it where not pinned."""
    m, d = cfg.model, cfg.data
    if d.path is None:
        ds = open_dataset(None, resolution=m.resolution, hflip=d.hflip, demo_size=d.demo_size,
                          demo_classes=m.num_classes, seed=cfg.train.seed)
        return ds, cfg
    packed = (Path(d.path).expanduser() / MANIFEST).exists()
    res = m.resolution if ("resolution" in pinned or not packed) else None  # a tree is resized to the config's
    ds = open_dataset(d.path, resolution=res, hflip=d.hflip, seed=cfg.train.seed)
    if ds.num_classes != m.num_classes and "num_classes" in pinned:
        raise UserError(f"dataset {d.path} has {ds.num_classes} classes but the config pins model.num_classes="
                        f"{m.num_classes}; drop that setting to take it from the data, or use a matching dataset")
    cfg = cfg.replace(model={"num_classes": ds.num_classes, "resolution": ds.resolution},
                      data={"path": str(Path(d.path).expanduser().resolve())})
    return ds, cfg


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


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


# --------------------------------------------------------------------------------------------------
# small helpers


class StopRequest:
    """SIGINT / SIGTERM set a flag; the loop finishes its step, saves a checkpoint and exits cleanly.
    A second Ctrl-C aborts at once (the last checkpoint on disk stays intact: writes are atomic)."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this step and saving a checkpoint "
              "(Ctrl-C again to abort)", file=sys.stderr, flush=True)

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def grad_norm(params) -> torch.Tensor:
    norms = [torch.linalg.vector_norm(p.grad.float()) for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())


def link_or_copy(src: Path, dst: Path) -> None:
    """Make ``dst`` the same file as ``src`` atomically (a hard link: no second multi-GB write)."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def check_same_model(cfg: Config, ckpt_cfg: Config, path: str) -> None:
    a, b = cfg.to_dict()["model"], ckpt_cfg.to_dict()["model"]
    diff = [f"model.{k}={b[k]!r} there vs {a[k]!r} here" for k in a if a[k] != b.get(k)]
    if diff:
        raise CheckpointError(f"checkpoint {path} is from another architecture ({'; '.join(diff[:3])}); resume without "
                              f"--config (the checkpoint's config is used), or start a new run")


# --------------------------------------------------------------------------------------------------
# the trainer


class Trainer:
    def __init__(self, cfg: Config, outdir: str | Path | None = None, resume: str | Path | dict | None = None,
                 pinned: Collection[str] = ("resolution", "num_classes"), inception_weights: str | None = None,
                 progress: bool = True, dataset=None):
        from accelerate import Accelerator
        from accelerate.utils import broadcast_object_list

        t = cfg.train
        # several processes without GPUs (torchrun / `accelerate launch --multi_gpu` on a CPU machine): accelerate
        # only picks its multi-CPU (gloo) mode when asked for the CPU explicitly
        cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
        try:
            self.acc = acc = Accelerator(mixed_precision=t.mixed_precision, cpu=cpu)
        except (ValueError, RuntimeError) as e:
            raise UserError(f"cannot set up accelerate with mixed_precision={t.mixed_precision!r} here "
                            f"({' '.join(str(e).split())[:160]}); use --mixed-precision bf16 or no") from None
        self.main, self.world, self.rank = acc.is_main_process, acc.num_processes, acc.process_index
        self.device = acc.device
        self.progress = progress
        self.writer = self.logfile = self.pbar = None

        ckpt = resume if isinstance(resume, dict) else (load_checkpoint(resume) if resume is not None else None)
        if ckpt is not None:
            pinned = ("resolution", "num_classes")  # the checkpoint fixes the architecture
        # ``dataset``: an already opened one (benchmarks); it must match cfg.model
        self.dataset, cfg = (dataset, cfg) if dataset is not None else open_training_data(cfg, pinned)
        if ckpt is not None:
            check_same_model(cfg, checkpoint_config(ckpt), ckpt["path"])
        self.cfg, t = cfg, cfg.train
        per_update = t.grad_accum * self.world
        if t.batch_size % per_update:
            raise UserError(f"train.batch_size={t.batch_size} is not divisible by grad_accum x processes = "
                            f"{t.grad_accum} x {self.world}; pick a multiple of {per_update}")
        if len(self.dataset) < t.batch_size:
            raise UserError(f"the dataset has {len(self.dataset)} images, fewer than one batch ({t.batch_size}); "
                            f"lower --batch-size or use more data")
        if t.mixed_precision == "fp16":
            self.say("warning: fp16 training of SAGAN often collapses early (loss scaling vs. the hinge/SN "
                     "dynamics); bf16 is the safe choice on hardware that has it")

        # output directory: decided on the main process, shared with the others
        out = [str(resolve_outdir(outdir, cfg.name, ckpt["path"] if ckpt else None)) if self.main else None]
        if self.world > 1:
            broadcast_object_list(out)
        self.outdir = Path(out[0])
        self.ckpt_dir = self.outdir / "checkpoints"

        self._build_networks(ckpt)
        self._build_data(ckpt)
        self._build_fid(inception_weights)

        # fixed latents and labels for the sample grids: rows = classes (evenly spread over all classes)
        self.grid_classes = spread_classes(cfg.model.num_classes, GRID_ROWS)
        self.grid_labels = torch.tensor(self.grid_classes).repeat_interleave(GRID_COLS)
        self.grid_z = sample_latents(len(self.grid_labels), cfg.model.z_dim, seed=t.seed)

        self._stats = torch.zeros(len(STAT_NAMES), device=self.device)
        self._stats_count = 0
        self._first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        if t.fid_every > 0 and self.fid is None:
            self.say("warning: train.fid_every is set but data.ref_stats is not; no FID during training "
                     "(make one with `python evaluate.py stats`)")

    # ---- setup ------------------------------------------------------------------------------------

    def _build_networks(self, ckpt: dict | None) -> None:
        cfg, t, acc = self.cfg, self.cfg.train, self.acc
        torch.manual_seed(t.seed)  # same initial weights on every process (DDP also broadcasts rank 0's)
        G, D = Generator.from_config(cfg), Discriminator.from_config(cfg)
        if t.sync_bn and self.world > 1:
            if self.device.type == "cpu":
                self.say("warning: train.sync_bn needs GPUs (SyncBatchNorm has no CPU kernel); ignored")
            else:
                G = torch.nn.SyncBatchNorm.convert_sync_batchnorm(G)
        fmt = torch.channels_last if t.channels_last else torch.preserve_format
        G, D = G.to(self.device, memory_format=fmt), D.to(self.device, memory_format=fmt)
        self.G_raw, self.D_raw = G, D
        self.ema = EMA(G, t.ema_decay, t.ema_start) if t.ema else None
        self.step, self.images_seen = 0, 0

        opt_G = torch.optim.Adam(G.parameters(), lr=t.lr_g, betas=(t.beta1, t.beta2), eps=t.adam_eps)
        opt_D = torch.optim.Adam(D.parameters(), lr=t.lr_d, betas=(t.beta1, t.beta2), eps=t.adam_eps)
        if ckpt is not None:
            where = ckpt["path"]
            load_state(G, ckpt["G"], f"G of {where}")
            load_state(D, ckpt["D"], f"D of {where}")
            if self.ema is not None:
                if ckpt["G_ema"] is not None:
                    load_state(self.ema.ema, ckpt["G_ema"], f"G_ema of {where}")
                else:
                    self.ema.update(0)  # no EMA in the checkpoint: start from G
            for opt, key in ((opt_G, "opt_G"), (opt_D, "opt_D")):
                try:
                    opt.load_state_dict(ckpt[key])
                except (ValueError, KeyError, RuntimeError) as e:
                    raise CheckpointError(f"{key} of {where} does not fit the networks ({' '.join(str(e).split())[:160]})") from None
            self.step = int(ckpt["step"])
            self.images_seen = int(ckpt.get("meta", {}).get("images_seen", 0))

        self.G, self.D, self.opt_G, self.opt_D = acc.prepare(G, D, opt_G, opt_D)
        if ckpt is not None and acc.scaler is not None and "scaler" in ckpt.get("meta", {}):
            acc.scaler.load_state_dict(ckpt["meta"]["scaler"])
        # G step: D unwrapped (frozen, no gradient sync); accelerate has already put autocast on its forward
        self.D_gstep = D
        if t.compile:
            # PITFALLS: torch.compile + DDP + spectral norm has an open PyTorch bug (113415): test first
            self.G, self.D, self.D_gstep = (torch.compile(m) for m in (self.G, self.D, self.D_gstep))

    def _build_data(self, ckpt: dict | None) -> None:
        t = self.cfg.train
        sampler = EpochBatchSampler(len(self.dataset), t.batch_size, t.grad_accum, self.rank, self.world, t.seed)
        epoch, index = 0, 0
        if ckpt is not None:
            epoch, index = int(ckpt["data"].get("epoch", 0)), int(ckpt["data"].get("index", 0))
            rng = ckpt["rng"]
            per = rng.get("per_process") or []
            set_rng_state(per[self.rank] if self.rank < len(per) else rng)
        self.data = DataStream(self.dataset, sampler, t.num_workers, self.device.type == "cuda", epoch, index)
        self.class_names = list(self.dataset.class_names)

    def _build_fid(self, weights: str | None) -> None:
        t, d = self.cfg.train, self.cfg.data
        self.fid = None
        if not (t.fid_every > 0 and d.ref_stats):
            return
        from .metrics import load_inception, load_ref

        with self.acc.main_process_first():  # one download at most
            inception = load_inception(weights, device=self.device)
        self.fid = (inception, load_ref(d.ref_stats))

    # ---- output -----------------------------------------------------------------------------------

    def say(self, msg: str, console: bool = True) -> None:
        if self.main:
            from tqdm.auto import tqdm

            if console:
                tqdm.write(msg, file=sys.stderr)
            if self.logfile is not None:
                self.logfile.write(msg + "\n")
                self.logfile.flush()

    def _open_outputs(self) -> None:
        if not self.main:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.outdir.mkdir(parents=True, exist_ok=True)
        (self.outdir / "config.yaml").write_text(yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
        self.logfile = open(self.outdir / "log.txt", "a")
        # on resume, purge_step hides events a crashed run wrote after its last checkpoint (PITFALLS)
        self.writer = SummaryWriter(str(self.outdir), purge_step=self.step + 1 if self.step else None)

    def _close_outputs(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.logfile is not None:
            self.logfile.close()
        self.writer = self.logfile = None

    # ---- one step ---------------------------------------------------------------------------------

    def _latents(self, gen: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn(n, self.cfg.model.z_dim, generator=gen, device=self.device)
        y = torch.randint(self.cfg.model.num_classes, (n,), generator=gen, device=self.device)
        return z, y

    def _sync(self, model, last: bool):
        return contextlib.nullcontext() if last else self.acc.no_sync(model)

    def _d_update(self, gen: torch.Generator) -> torch.Tensor:
        fmt = torch.channels_last if self.cfg.train.channels_last else torch.preserve_format
        batches = self.data.next()
        A = len(batches)
        self.opt_D.zero_grad(set_to_none=True)
        stats = torch.zeros(5, device=self.device)
        for m, (x, y) in enumerate(batches):
            x = x.to(self.device, non_blocking=True, memory_format=fmt)
            y = y.to(self.device, non_blocking=True)
            z, y_fake = self._latents(gen, len(y))
            with torch.no_grad():
                fake = self.G(z, y_fake)
            with self._sync(self.D, last=m == A - 1):
                logits = self.D(torch.cat([x, fake.to(x.dtype)]), torch.cat([y, y_fake]))  # one call (module doc)
                real_logits, fake_logits = logits.float().split([len(x), len(fake)])
                loss, loss_real, loss_fake = d_hinge_loss(real_logits, fake_logits)
                self.acc.backward(loss / A)
            stats += torch.stack([loss_real, loss_fake, loss.new_zeros(()), real_logits.mean(), fake_logits.mean()]).detach()
        self.opt_D.step()
        return stats / A

    def _g_update(self, gen: torch.Generator) -> torch.Tensor:
        A, micro = self.cfg.train.grad_accum, self.data.sampler.per_process
        self.opt_G.zero_grad(set_to_none=True)
        self.D_raw.requires_grad_(False)
        total = torch.zeros((), device=self.device)
        try:
            for m in range(A):
                z, y_fake = self._latents(gen, micro)
                with self._sync(self.G, last=m == A - 1):
                    loss = g_hinge_loss(self.D_gstep(self.G(z, y_fake), y_fake))
                    self.acc.backward(loss / A)
                total += loss.detach()
        finally:
            self.D_raw.requires_grad_(True)
        self.opt_G.step()
        return total / A

    def train_step(self) -> None:
        t = self.cfg.train
        self.step += 1
        # latents of this step on this process: a pure function of (seed, step, rank) -> exact resume
        gen = torch.Generator(device=self.device).manual_seed(mix_seed(t.seed, self.step, self.rank))
        stats = sum(self._d_update(gen) for _ in range(t.d_steps)) / t.d_steps
        stats[2] = self._g_update(gen)
        if self.ema is not None and not self.acc.optimizer_step_was_skipped:
            self.ema.update(self.step)
        self.images_seen += t.d_steps * t.batch_size
        self._stats += stats
        self._stats_count += 1
        finite = torch.isfinite(stats).all()  # stays on the device: no sync until the next check
        self._first_bad = torch.where(finite | (self._first_bad >= 0), self._first_bad, self.step)

    # ---- checks, logging, samples, checkpoints ----------------------------------------------------

    def check_finite(self) -> None:
        """Raise :class:`TrainingDiverged` if any step since the start had a NaN/Inf loss (one sync)."""
        bad = self._first_bad.clone()
        if self.world > 1:
            bad = torch.where(bad < 0, torch.iinfo(torch.long).max, bad)
            bad = self.acc.gather(bad.view(1)).min()
            bad = torch.where(bad == torch.iinfo(torch.long).max, -1, bad)
        bad = int(bad)
        if bad < 0:
            return
        last = self.ckpt_dir / "last.pt"
        kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
        raise TrainingDiverged(f"non-finite loss (NaN/Inf) at step {bad}; stopped without saving, {kept}; lower "
                               f"the learning rates (train.lr_g/lr_d) or use bf16 instead of fp16, then --resume")

    def _weights_finite(self) -> bool:
        flags = [torch.isfinite(p).all() for m in (self.G_raw, self.D_raw) for p in m.parameters()]
        ok = torch.stack(flags).all().float()
        return bool(self.acc.reduce(ok, "sum") == self.world) if self.world > 1 else bool(ok)

    def log(self, since: float, images: int) -> None:
        stats = self._stats / max(1, self._stats_count)
        if self.world > 1:
            stats = self.acc.reduce(stats, "mean")
        g_norm, d_norm = grad_norm(self.G_raw.parameters()), grad_norm(self.D_raw.parameters())
        values = dict(zip(STAT_NAMES, stats.tolist()))
        self._stats.zero_()
        self._stats_count = 0
        self.check_finite()
        if not self.main:
            return
        elapsed = max(time.perf_counter() - since, 1e-9)
        scalars = {
            "loss/d_loss_real": values["d_loss_real"], "loss/d_loss_fake": values["d_loss_fake"],
            "loss/d_loss": values["d_loss_real"] + values["d_loss_fake"], "loss/g_loss": values["g_loss"],
            "logits/real": values["d_logits_real"], "logits/fake": values["d_logits_fake"],
            "grad_norm/G": float(g_norm), "grad_norm/D": float(d_norm),
            "lr/G": self.opt_G.param_groups[0]["lr"], "lr/D": self.opt_D.param_groups[0]["lr"],
            "perf/images_per_s": images / elapsed, "progress/images_seen": self.images_seen,
        }
        for net, module in (("G", self.G_raw), ("D", self.D_raw)):
            for res, attn in module.attn.items():
                scalars[f"attention/gamma_{net}_{res}px"] = float(attn.gamma.detach())
        if self.device.type == "cuda":
            scalars["perf/peak_memory_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        for k, v in scalars.items():
            self.writer.add_scalar(k, v, self.step)
        line = (f"step {self.step:>7d} | d_loss {scalars['loss/d_loss']:.4f} (real {values['d_loss_real']:.4f} "
                f"fake {values['d_loss_fake']:.4f}) | g_loss {values['g_loss']:.4f} | D(x) {values['d_logits_real']:+.3f} "
                f"D(G(z)) {values['d_logits_fake']:+.3f} | |grad| G {float(g_norm):.3g} D {float(d_norm):.3g} | "
                f"{scalars['perf/images_per_s']:.1f} img/s")
        self.logfile.write(line + "\n")
        self.logfile.flush()
        if self.pbar is not None:
            self.pbar.set_postfix(d=f"{scalars['loss/d_loss']:.3f}", g=f"{values['g_loss']:.3f}",
                                  ips=f"{scalars['perf/images_per_s']:.0f}", refresh=False)

    def sample_generator(self) -> torch.nn.Module:
        return self.ema.ema if self.ema is not None else self.G_raw

    def write_samples(self) -> None:
        """Grid of the EMA generator (eval mode) on fixed latents, one class per row -> PNG + TensorBoard."""
        self.check_finite()
        if self.main:
            from PIL import Image
            from torchvision.utils import make_grid

            from .viz import save_png

            images = torch.cat([b for b, _ in generate(self.sample_generator(), self.grid_z, self.grid_labels,
                                                       batch_size=64, device=self.device)])
            grid = make_grid(images.permute(0, 3, 1, 2), nrow=GRID_COLS, padding=2, pad_value=255)
            save_png(Image.fromarray(grid.permute(1, 2, 0).numpy()), self.outdir / "samples" / f"step_{self.step:07d}.png")
            self.writer.add_image("samples", grid, self.step)
        self.acc.wait_for_everyone()

    def evaluate_fid(self) -> None:
        from .metrics import evaluate_generator

        self.check_finite()
        inception, ref = self.fid
        t = self.cfg.train
        result = evaluate_generator(self.sample_generator(), ref, num_samples=t.fid_num_samples, inception=inception,
                                    seed=t.seed, accelerator=self.acc)
        if self.main:
            self.writer.add_scalar("metrics/fid", result["fid"], self.step)
            self.writer.add_scalar("metrics/inception_score", result["inception_score"]["mean"], self.step)
            self.say(f"step {self.step}: FID {result['fid']:.2f} ({t.fid_num_samples} samples of the "
                     f"{'EMA ' if self.ema else ''}generator), IS {result['inception_score']['mean']:.2f}")

    def save(self) -> Path:
        """Checkpoint ``checkpoints/step_NNNNNNN.pt`` (and ``last.pt`` pointing at it), atomically, only
        after checking that the losses and weights are finite: a diverged run never overwrites last.pt."""
        from accelerate.utils import gather_object

        self.check_finite()
        if not self._weights_finite():
            raise TrainingDiverged(f"non-finite weights at step {self.step}; stopped without saving, the last "
                                   f"good checkpoint is {self.ckpt_dir / 'last.pt'}; lower the learning rates and --resume")
        states = gather_object([rng_state()]) if self.world > 1 else [rng_state()]
        path = self.ckpt_dir / f"step_{self.step:07d}.pt"
        if self.main:
            rng = dict(states[0])
            if self.world > 1:
                rng["per_process"] = states
            meta = {"images_seen": self.images_seen, "num_processes": self.world, "torch": str(torch.__version__),
                    "time": time.time()}
            if self.acc.scaler is not None:
                meta["scaler"] = self.acc.scaler.state_dict()
            payload = {
                "step": self.step, "config": self.cfg.to_dict(),
                "G": self.G_raw.state_dict(), "D": self.D_raw.state_dict(),
                "G_ema": self.ema.state_dict() if self.ema is not None else None,
                "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
                "rng": rng, "data": self.data.state(), "class_names": self.class_names, "meta": meta,
            }
            save_checkpoint(path, payload)
            link_or_copy(path, self.ckpt_dir / "last.pt")
            # prune only after the new file is complete (PITFALLS: accelerate deletes first)
            old = sorted(self.ckpt_dir.glob("step_*.pt"))[: -self.cfg.train.keep_checkpoints]
            for p in old:
                p.unlink(missing_ok=True)
        self.acc.wait_for_everyone()
        return path

    # ---- the loop ---------------------------------------------------------------------------------

    def run(self) -> Path:
        from tqdm.auto import tqdm

        t = self.cfg.train
        self._open_outputs()
        start_step = self.step
        if start_step:
            self.say(f"resumed at step {start_step} from {self.ckpt_dir / 'last.pt'}")
        self.say(f"training {self.cfg.name}: {len(self.dataset)} images, {self.cfg.model.num_classes} classes, "
                 f"{self.cfg.model.resolution}px, global batch {t.batch_size} = {self.data.sampler.per_process} x "
                 f"{self.world} process(es) x {t.grad_accum} accumulation, {self.device}, "
                 f"mixed precision {t.mixed_precision}; writing to {self.outdir}")
        n_g, n_d = count_parameters(self.G_raw), count_parameters(self.D_raw)
        self.say(f"parameters: G {n_g / 1e6:.2f}M + D {n_d / 1e6:.2f}M = {(n_g + n_d) / 1e6:.2f}M")
        self.say("sample grid rows: " + ", ".join(self.class_names[c] for c in self.grid_classes))
        check_stop_every = 1 if self.world == 1 else min(t.log_every, 10)  # a collective under DDP
        try:
            with StopRequest() as stop:
                self.pbar = tqdm(total=t.max_steps, initial=self.step, unit="step", dynamic_ncols=True,
                                 disable=not (self.main and self.progress))
                since, images_since = time.perf_counter(), 0
                while self.step < t.max_steps:
                    self.train_step()
                    self.pbar.update(1)
                    images_since += t.d_steps * t.batch_size
                    s = self.step
                    stop_now = (s % check_stop_every == 0 or s == t.max_steps) and self._stop_requested(stop)
                    end = s == t.max_steps or stop_now
                    if s == 1 or s % t.log_every == 0 or end:
                        self.log(since, images_since)
                        since, images_since = time.perf_counter(), 0
                    if s % t.sample_every == 0 or end:
                        self.write_samples()
                    if self.fid is not None and (s % t.fid_every == 0 or s == t.max_steps):
                        self.evaluate_fid()
                    if s % t.checkpoint_every == 0 or end:
                        self.save()
                    if stop_now:
                        self.say(f"stopped at step {s}; continue with --resume {self.outdir}")
                        return self.outdir
        except TrainingDiverged as e:
            self.say(f"error: {e}", console=False)  # the CLI prints it
            raise
        finally:
            if self.pbar is not None:
                self.pbar.close()
            self._close_outputs()
        self.say(f"done: {self.step} steps; checkpoint {self.ckpt_dir / 'last.pt'}")
        return self.outdir

    def _stop_requested(self, stop: StopRequest) -> bool:
        flag = stop.signum is not None
        if self.world > 1:
            flag = bool(self.acc.reduce(torch.tensor(float(flag), device=self.device), "sum") > 0)
        return flag


def train(cfg: Config, outdir: str | Path | None = None, resume: str | Path | dict | None = None,
          pinned: Collection[str] = ("resolution", "num_classes"), inception_weights: str | None = None,
          progress: bool = True) -> Path:
    """Train (or resume) a SAGAN; returns the run directory.

    ``resume``: a checkpoint file, a run directory, or an already loaded checkpoint dict; its step,
    weights, optimizer states and data position are restored. ``pinned``: which of ``model.resolution``
    and ``model.num_classes`` the caller fixed; the others are taken from a real dataset.
    """
    return Trainer(cfg, outdir, resume, pinned, inception_weights, progress).run()
