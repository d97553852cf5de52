"""What D and G minimise: the adversarial losses (``train.loss``) and the regularisers of D's loss, each
registered by name (:data:`sagan.registry.LOSSES`, :data:`sagan.registry.REGULARISERS`).

A leaf of the training stack: it imports torch, the registries and the checkpoint format's scalar state,
nothing of the trainer, so config validation and ``--help`` ask it for the registered names without
importing :mod:`sagan.training`. The trainer's GAN step (:mod:`sagan.training.step`) uses it.
"""

from .losses import LOSSES, GANLoss, auxiliary_classifier_parts, d_hinge_loss, g_hinge_loss, get_loss, register_loss
from .regularisers import (REGULARISERS, LeCam, Regulariser, build_regularisers, input_gradient_norms,
                           orthogonal_penalty, register_regulariser, squared_gradient_norms)

__all__ = ["GANLoss", "LOSSES", "LeCam", "REGULARISERS", "Regulariser", "auxiliary_classifier_parts",
           "build_regularisers", "d_hinge_loss", "g_hinge_loss", "get_loss", "input_gradient_norms",
           "orthogonal_penalty", "register_loss", "register_regulariser", "squared_gradient_norms"]
