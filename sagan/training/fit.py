"""Fitting a device: what one training step costs (``train.py --dry-run``) and which split of the global
batch fits (``--grad-accum auto``).

A probe is the real :class:`~sagan.training.step.GANStep` (D updates, G update, EMA) on one process, at a
given micro-batch size, on random images; the networks, optimisers and EMA are built as the trainer builds
them. Runs are split-invariant (:mod:`sagan.training.step`), so choosing another processes x accumulation
split for the same global batch and micro-batch size does not change the result.

Memory is measured, not estimated: the peak of live tensor storage during the second step (the first one
allocates Adam's moments), counted op by op (:class:`LiveBytes`, CPU and GPU alike; not the allocator's
caching or the runtime); its growth per image between two micro-batch sizes gives the largest micro-batch
that fits a memory budget.
"""

from __future__ import annotations

import functools
import re
import time
import weakref
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary

from ..config import Config
from ..data.batch_plan import BatchPlan
from ..errors import UserError
from ..models.networks import Discriminator, Generator, count_parameters
from .step import GANStep

UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
         "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_memory(text: str) -> int:
    """``"24GiB"``, ``"16GB"``, ``"512MiB"`` -> bytes; a one-line error otherwise."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?i?b?)\s*", str(text), re.IGNORECASE)
    if not m or m.group(2).lower() not in UNITS or float(m.group(1)) <= 0:
        raise UserError(f"--memory {text!r} is not a memory size; write e.g. 24GiB, 16GB or 512MiB")
    return int(float(m.group(1)) * UNITS[m.group(2).lower()])


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


@dataclass
class Probe:
    micro_batch: int
    peak_bytes: int
    flops: float  # one training step (d_steps D updates + the G update) at this micro-batch
    seconds: float = 0.0  # wall time of one plain step (no memory or FLOP counting) at this micro-batch


class LiveBytes(TorchDispatchMode):
    """The peak of live tensor storage bytes while active, on any device: every storage an op creates is
    counted until it is freed (a weak reference's callback), on top of ``existing`` tensors (weights,
    gradients, optimiser moments), which count until they are freed too."""

    def __init__(self, existing=()):
        super().__init__()
        self._seen = WeakIdKeyDictionary()
        self.current = self.peak = 0
        for t in existing:
            self._add(t)

    def _free(self, nbytes: int) -> None:
        self.current -= nbytes

    def _add(self, t) -> None:
        if not isinstance(t, torch.Tensor) or t.device.type == "meta":
            return
        st = t.untyped_storage()
        if st in self._seen:
            return
        n = st.nbytes()
        self._seen[st] = weakref.finalize(st, self._free, n)
        self.current += n
        self.peak = max(self.peak, self.current)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            self._add(t)
        return out


def _live_peak(run, *modules, optimizers=()) -> int:
    existing = [t for m in modules for t in (*m.parameters(), *m.buffers())]
    existing += [p.grad for m in modules for p in m.parameters() if p.grad is not None]
    existing += [v for opt in optimizers for state in opt.state.values() for v in state.values()]
    with LiveBytes(existing) as live:
        run()
    return live.peak


def probe_step(cfg: Config, micro: int, accelerator) -> Probe:
    """One real GAN step at ``micro`` images per micro-batch on this process: peak memory, FLOPs."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = cfg.replace(train={"batch_size": micro * accelerator.num_processes, "grad_accum": 1})
    m, device = cfg.model, accelerator.device
    torch.manual_seed(cfg.train.seed)
    G, D = Generator.from_config(cfg).to(device), Discriminator.from_config(cfg).to(device)
    step = GANStep(cfg, G, D, accelerator).prepare()
    x = torch.rand(micro, 3, m.resolution, m.resolution, device=device) * 2 - 1
    y = torch.arange(micro, device=device) % max(m.num_classes, 1)  # unconditional (0 classes): all-zero labels
    batches = lambda: [(x, y)]  # noqa: E731
    step(1, batches)  # Adam's moments exist from here on
    nets = [G, D] + ([step.ema.ema] if step.ema is not None else [])
    peak = _live_peak(functools.partial(step, 2, batches), *nets, optimizers=(step.opt_G, step.opt_D))
    counter = FlopCounterMode(display=False)
    with counter:
        step(3, batches)
    seconds = _timed(functools.partial(step, 4, batches), device)
    del step, G, D
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return Probe(micro, peak, float(counter.get_total_flops()), seconds)


def _timed(run, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def step_seconds(a: Probe, b: Probe, micro: int, accum: int) -> float:
    """Seconds of one training step of ``accum`` micro-batches of ``micro`` images, from the timed steps of
    two probes: linear in the micro-batch (measured where ``micro`` is one of them, extrapolated beyond)."""
    per_image = max(0.0, (b.seconds - a.seconds) / (b.micro_batch - a.micro_batch))
    return accum * max(b.seconds + per_image * (micro - b.micro_batch), 0.0)


def duration(seconds: float) -> str:
    """``42 s``, ``17 min``, ``3.2 h``, ``2.5 days``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 48 * 3600 else f"{seconds / 86400:.1f} days"


def time_notes(cfg: Config, a: Probe, b: Probe, plan: BatchPlan) -> list[str]:
    """``--dry-run``'s estimate of seconds per step under ``plan`` and of the time to train.max_steps (random
    images held in memory: data loading, sample grids, evaluations and checkpoints come on top)."""
    t, micro = cfg.train, plan.micro_batch
    sec = step_seconds(a, b, micro, plan.accumulation)
    how = ("measured" if micro == b.micro_batch else
           f"timed at micro-batch {a.micro_batch} and {b.micro_batch}, extrapolated linearly to {micro}")
    return [f"time: about {sec:.2f} s per step ({how}; micro-batch {micro} x {plan.accumulation} accumulation on "
            f"{plan.processes} process(es), {torch.get_num_threads()} CPU thread(s)), so about "
            f"{duration(sec * t.max_steps)} for train.max_steps {t.max_steps} (data loading, sample grids, "
            f"evaluations and checkpoints come on top)"]


def dry_run(cfg: Config, accelerator, memory: int, say=print) -> int:
    """``train.py --dry-run``: parameters, FLOPs per image, peak memory at two micro-batch sizes and its
    growth per image, and the largest micro-batch that fits ``memory`` bytes; returns that micro-batch. The
    config's split (its :class:`~sagan.data.batch_plan.BatchPlan`, refused as the trainer refuses it when
    it does not divide the global batch) is the one timed."""
    t = cfg.train
    plan = BatchPlan.of(cfg, accelerator.num_processes)
    per_process = plan.micro_batch
    big = max(2, min(per_process, 8))
    small = big // 2
    n_g, n_d = count_parameters(Generator.from_config(cfg)), count_parameters(Discriminator.from_config(cfg))
    say(f"dry run of {cfg.name}: {cfg.model.resolution}px, {cfg.model.num_classes} classes, on {accelerator.device}, "
        f"mixed precision {t.mixed_precision}; nothing is written")
    say(f"parameters: G {n_g / 1e6:.2f}M + D {n_d / 1e6:.2f}M = {(n_g + n_d) / 1e6:.2f}M")
    a, b = probe_step(cfg, small, accelerator), probe_step(cfg, big, accelerator)
    images = t.d_steps * big  # real images one step consumes per micro-batch of `big`
    say(f"FLOPs per training image: {b.flops / images / 1e9:.2f} GFLOP ({t.d_steps} D update(s) + the G update, "
        f"forward and backward; {b.flops / 1e9:.1f} GFLOP per step at micro-batch {big})")
    growth = max(0.0, (b.peak_bytes - a.peak_bytes) / (big - small))
    fixed = a.peak_bytes - growth * small
    say(f"peak memory: {gib(a.peak_bytes)} at micro-batch {small}, {gib(b.peak_bytes)} at {big}; "
        f"{growth / 2**20:.1f} MiB per image on top of {gib(fixed)}")
    for line in time_notes(cfg, a, b, plan):
        say(line)
    fit = int((memory - fixed) // growth) if growth > 0 else per_process
    splits = plan.micro_batch_options()
    options = [o for o in splits if o <= fit]
    if not options and fit >= 1:  # images fit, but no even split of the global batch is that small
        say(f"fits {gib(memory)}: up to {fit} images per micro-batch, but the micro-batches that split global batch "
            f"{t.batch_size} evenly on {accelerator.num_processes} process(es) are {splits[-1]} or more (halvings of "
            f"{per_process}); pick a --batch-size that halves down to {fit} or fewer (a power of two does)")
        return 0
    if not options:
        say(f"fits {gib(memory)}: no micro-batch (even 1 image needs {gib(fixed + growth)})")
        return 0
    choice = options[0]
    fitting = BatchPlan.with_micro_batch(t.batch_size, plan.processes, choice)
    say(f"fits {gib(memory)}: micro-batch {choice} (up to {fit} images), i.e. --grad-accum {fitting.accumulation} "
        f"at global batch {t.batch_size} on {plan.processes} process(es)")
    return choice


def largest_that_runs(options, probe) -> int:
    """The first of ``options`` (largest first) for which ``probe(micro)`` runs, halving past each
    out-of-memory error (accelerate's ``should_reduce_batch_size`` decides what is one; any other error
    propagates); 0 when none runs."""
    from accelerate.utils.memory import release_memory, should_reduce_batch_size  # not in accelerate.utils

    for micro in options:
        try:
            probe(micro)
            return micro
        except Exception as e:  # noqa: BLE001 - only out-of-memory errors are retried
            if not should_reduce_batch_size(e):
                raise
            release_memory()
    return 0


def auto_grad_accum(cfg: Config, accelerator, say=print) -> Config:
    """``--grad-accum auto``: the same global batch, the largest per-process micro-batch that runs a real
    step on this device (halving on out-of-memory, as accelerate's ``find_executable_batch_size``); on a
    CPU the config's split is kept. Every process probes on its own and all take the smallest answer."""
    t, world = cfg.train, accelerator.num_processes
    if accelerator.device.type != "cuda":
        kept = BatchPlan(t.batch_size, world, t.grad_accum)  # (the trainer refuses it if it does not divide)
        say(f"--grad-accum auto: no GPU here, keeping train.grad_accum={t.grad_accum} "
            f"(micro-batch {kept.micro_batch} on {world} process(es))")
        return cfg
    options = BatchPlan(t.batch_size, world, 1).micro_batch_options()
    choice = largest_that_runs(options, lambda micro: probe_step(cfg, micro, accelerator))
    if world > 1:
        choice = int(accelerator.gather(torch.tensor([choice], device=accelerator.device)).min())
    if choice == 0:
        raise UserError(f"--grad-accum auto: not even one image per micro-batch fits on {accelerator.device}; use a "
                        "smaller model (model.g_ch / d_ch) or lower precision (--mixed-precision bf16)")
    plan = BatchPlan.with_micro_batch(t.batch_size, world, choice)
    say(f"--grad-accum auto: global batch {plan.global_batch} = micro-batch {choice} x {world} process(es) "
        f"x {plan.accumulation} accumulation")
    return cfg.replace(train={"grad_accum": plan.accumulation})
