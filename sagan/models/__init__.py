"""The networks: the ResNet generator with conditional batch norm and the projection discriminator, both
with spectral norm and a self-attention block (Zhang et al. 2019), and
:func:`load_generator` / :func:`load_discriminator` of a checkpoint."""

from .attention import SelfAttention
from .layers import ConditionalBatchNorm2d
from .loading import load_discriminator, load_generator
from .networks import Discriminator, Generator, count_parameters

__all__ = ["ConditionalBatchNorm2d", "Discriminator", "Generator", "SelfAttention", "count_parameters",
           "load_discriminator", "load_generator"]
