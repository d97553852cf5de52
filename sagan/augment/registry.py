"""The augmentation registry (``train.augment``): one module plus one :func:`register_augment` line each.

An augmentation is applied to everything D sees, real and generated images alike, in every D step and
in the G step (DiffAugment, Zhao et al. 2020; ADA, Karras et al. 2020: augmenting only the reals
teaches G to produce augmented images). It must be differentiable (G's gradient flows through it) and
draw its randomness only from the generator it is given (the step's seeded generator: exact resume).

An :class:`Augment` may also watch D (``observe``: D's logits on the augmented reals of each
micro-batch), adapt at the end of each step (``end_step``), report values for the log
(``log_values``) and keep a state in checkpoints (``state_dict`` / ``load_state_dict``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..registry import AUGMENTS


class Augment:
    """The identity (``none``, the paper's setting); the base of every augmentation."""

    active = False  # False: the training step does not call it at all (bit-identical to no augmentation)

    def __call__(self, x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        return x

    def observe(self, real_logits: torch.Tensor) -> None:
        """D's logits on the (augmented) real images of one micro-batch."""

    def end_step(self, step: int) -> None:
        """Called after G step ``step`` (every process, same order)."""

    def describe(self) -> str:
        """One start-up line: what D will see."""
        return "no augmentation of what D sees"

    def log_values(self) -> dict[str, float]:
        """Scalars for the log line and TensorBoard (``augment/<name>``); a host sync is fine here."""
        return {}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        pass


# (train config, accelerator) -> Augment
Factory = Callable[..., Augment]


@dataclass(frozen=True)
class AugmentEntry:
    name: str
    build: Factory
    description: str


# AUGMENTS (sagan.registry.AUGMENTS) is filled here and by diffaugment.py, ada.py


def register_augment(name: str, build: Factory, description: str) -> AugmentEntry:
    return AUGMENTS.register(name, AugmentEntry(name, build, description))


def build_augment(cfg, accelerator) -> Augment:
    """The augmentation ``cfg.train.augment`` for a training run (config validation checked the name)."""
    return AUGMENTS[cfg.train.augment].build(cfg, accelerator)


register_augment("none", lambda cfg, acc: Augment(), "no augmentation (the SAGAN paper)")
