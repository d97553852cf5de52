"""The training data stream: a resumable, sharded epoch sampler and the loop's source of global batches.

An epoch is a permutation of the dataset seeded by ``(seed, epoch)``; the stream's position is
``(epoch, index)`` (images of the epoch consumed), which a checkpoint stores, so a resumed run continues
at the exact sample where it stopped, however many processes or loader workers run it.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Collection

import numpy as np
import torch

from ..config import Config
from ..errors import UserError
from . import dataset_from_config
from .batch_plan import BatchPlan
from .formats import find_format
from .subset import apply_subset


def mix_seed(*ints: int) -> int:
    """A 63-bit seed from several integers (numpy's SeedSequence hashing, so (1, 2) and (2, 1) differ)."""
    return int(np.random.SeedSequence([int(i) for i in ints]).generate_state(2, np.uint32).view(np.uint64)[0] >> 1)


class EpochBatchSampler:
    """This process's micro-batches of one epoch, starting at a sample offset.

    An epoch is a permutation of the dataset seeded by ``(seed, epoch)``, cut into global batches of
    ``global_batch`` images (the remainder is dropped); each global batch is cut into ``micro_batches``
    micro-batches and each of those into ``world`` equal shards, of which this process takes shard
    ``rank``. The loop calls ``set_epoch(epoch, start)`` before iterating, so a resumed run starts at the
    exact sample where the checkpoint left off. :meth:`for_plan` takes these numbers from the run's
    :class:`~sagan.data.batch_plan.BatchPlan`.
    """

    def __init__(self, size: int, global_batch: int, micro_batches: int, rank: int, world: int, seed: int):
        self.plan = BatchPlan(global_batch=global_batch, processes=world, accumulation=micro_batches)
        self.size, self.rank, self.seed = size, rank, seed
        self.epoch, self.start = 0, 0

    # the split's numbers, read from the plan (one source)
    global_batch = property(lambda self: self.plan.global_batch)
    micro_batches = property(lambda self: self.plan.accumulation)
    world = property(lambda self: self.plan.processes)
    per_process = property(lambda self: self.plan.micro_batch)

    @classmethod
    def for_plan(cls, plan: BatchPlan, size: int, rank: int, seed: int) -> "EpochBatchSampler":
        """The sampler of process ``rank`` of ``plan`` over a dataset of ``size`` images."""
        return cls(size=size, global_batch=plan.global_batch, micro_batches=plan.accumulation, rank=rank,
                   world=plan.processes, seed=seed)

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


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: a scheduler's SIGTERM (or a terminal's Ctrl-C) reaches the whole
    process group, and torch's workers die of it (their C handler re-raises SIGTERM), which kills the step
    the main process wanted to finish and save. The main process stops the run; workers carry on until it
    shuts them down."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class DataStream:
    """Global batches (as lists of this process's micro-batches) forever, tracking (epoch, index)."""

    def __init__(self, dataset, sampler: EpochBatchSampler, num_workers: int, pin_memory: bool, epoch: int = 0,
                 index: int = 0):
        self.dataset, self.sampler = dataset, sampler
        self.epoch, self.index = epoch, index
        # the loader draws its workers' base seed from this generator, not the global RNG (exact resume)
        seeds = torch.Generator().manual_seed(mix_seed(sampler.seed, sampler.rank))
        self.loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=sampler, num_workers=num_workers, pin_memory=pin_memory, generator=seeds,
            persistent_workers=num_workers > 0, worker_init_fn=ignore_stop_signals if num_workers > 0 else None)
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
    """The training dataset (``data.subset`` of it, :mod:`sagan.data.subset`), and the config with
    resolution / classes taken from it where not pinned. The format is detected once."""
    m, d = cfg.model, cfg.data
    if d.path is None:
        if d.split is not None or d.labels is not None:
            raise UserError("data.split / data.labels choose within a CIFAR or Hugging Face folder; set data.path, "
                            "or drop them for the demo dataset")
        return apply_subset(dataset_from_config(cfg), d.subset, d.subset_seed), cfg
    found = find_format(d.path)
    sized = found[0].sized  # packed, CIFAR: the data gives the resolution
    res = m.resolution if ("resolution" in pinned or not sized) else None  # image folders: resized to the config's
    ds = dataset_from_config(cfg, resolution=res, found=found)
    uncond = m.num_classes == 0  # an unconditional model trains on any data and ignores its labels
    if ds.num_classes != m.num_classes and "num_classes" in pinned and not uncond:
        raise UserError(f"dataset {d.path} has {ds.num_classes} classes but the config pins model.num_classes="
                        f"{m.num_classes}; drop that setting to take it from the data, or use a matching dataset")
    cfg = cfg.replace(model={"num_classes": 0 if uncond else ds.num_classes, "resolution": ds.resolution},
                      data={"path": str(Path(d.path).expanduser().resolve())})
    return apply_subset(ds, d.subset, d.subset_seed), cfg
