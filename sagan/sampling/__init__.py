"""Drawing images from a generator: latents and labels, batch-norm statistics at sampling time, sample
sets on disk, and figures."""

from .bn_stats import BN_MODES, prepare_generator
from .draw import generate, to_uint8
from .latents import class_balanced_labels, sample_latents

__all__ = ["BN_MODES", "class_balanced_labels", "generate", "prepare_generator", "sample_latents", "to_uint8"]
