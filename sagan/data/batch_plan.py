"""How one update's global batch is split: ``processes`` x ``accumulation`` micro-batches of ``micro_batch``
images each (``train.batch_size`` = micro_batch x processes x accumulation).

The trainer computes its :class:`BatchPlan` once, from the config and the number of accelerate processes,
and hands it to the data stream (:class:`sagan.data.stream.EpochBatchSampler` cuts each global batch by
it), to the GAN step (which cuts the latents the same way, :mod:`sagan.training.step`), to ``--dry-run``
and to the start-up notes (which compare it with the plan a checkpoint was written under).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..checkpoint import checkpoint_config
from ..config import Config
from ..errors import UserError

__all__ = ["BatchPlan"]


@dataclass(frozen=True)
class BatchPlan:
    """The split of the global batch of one update. ``micro_batch`` (images per micro-batch on one process)
    is derived; a plan made from a config (:meth:`of`) is checked to split evenly, one made from its numbers
    is taken as given (a checkpoint records the plan it was trained under)."""

    global_batch: int
    processes: int
    accumulation: int
    micro_batch: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "micro_batch", self.global_batch // (self.accumulation * self.processes))

    @classmethod
    def of(cls, cfg: Config, processes: int) -> "BatchPlan":
        """The plan of ``cfg``'s ``train.batch_size`` and ``train.grad_accum`` on ``processes`` processes; a
        global batch that does not split evenly is one line saying which multiple would."""
        t = cfg.train
        per_update = t.grad_accum * processes
        if t.batch_size % per_update:
            raise UserError(f"train.batch_size={t.batch_size} is not divisible by grad_accum x processes = "
                            f"{t.grad_accum} x {processes}; pick a multiple of {per_update}")
        return cls(t.batch_size, processes, t.grad_accum)

    @classmethod
    def of_checkpoint(cls, ckpt: dict) -> "BatchPlan":
        """The plan a training checkpoint was written under: its config's batch and accumulation, and the
        processes it recorded (``meta["num_processes"]``; one when it has none, e.g. a converted checkpoint)."""
        t = checkpoint_config(ckpt).train
        return cls(t.batch_size, int((ckpt.get("meta") or {}).get("num_processes", 1)), t.grad_accum)

    @classmethod
    def with_micro_batch(cls, global_batch: int, processes: int, micro_batch: int) -> "BatchPlan":
        """The plan that runs ``micro_batch`` images per micro-batch (``--grad-accum auto``): as many
        accumulation steps as the global batch then needs."""
        return cls(global_batch, processes, global_batch // (micro_batch * processes))

    def micro_batch_options(self) -> list[int]:
        """Micro-batch sizes that split the global batch evenly on these processes, largest first: the
        per-process batch without accumulation, then its halvings while they divide it."""
        out = [self.global_batch // self.processes]
        while out[-1] % 2 == 0 and out[-1] > 1:
            out.append(out[-1] // 2)
        return out
