"""Augmentations of what D sees (``train.augment``), for training on small datasets.

    none         the SAGAN paper: D sees the images as they are (plus the data's own x-flip)
    diffaugment  DiffAugment (Zhao et al. 2020): ``train.augment_policy`` of color, translation, cutout
    ada          adaptive discriminator augmentation (Karras et al. 2020): flip, rotation, translation,
                 color, each with a probability p that follows D's overfitting signal

``diffaugment(x, policy, gen)`` applies one DiffAugment policy to a batch in [-1, 1];
``python -m sagan.commands.augment preview`` shows real images beside their augmented versions. Adding an
augmentation: one module with an :class:`Augment` subclass and one :func:`register_augment` line,
imported below.
"""

from .registry import AUGMENTS, Augment, build_augment, register_augment  # registers "none"
from .diffaugment import POLICY_OPS, DiffAugment, diffaugment, parse_policy  # registers "diffaugment"
from .ada import AdaptiveAugment, ada_pipeline  # registers "ada"

__all__ = ["AUGMENTS", "POLICY_OPS", "AdaptiveAugment", "Augment", "DiffAugment", "ada_pipeline", "build_augment",
           "diffaugment", "parse_policy", "register_augment"]
