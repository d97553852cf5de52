"""The adversarial losses, defined in :mod:`sagan.objectives.losses` (a leaf that config validation can
import without the trainer); their names stay importable from here (``sagan.training.losses.register_loss``)."""

from ..objectives.losses import (LOSSES, DLoss, GANLoss, GLoss, auxiliary_classifier_parts, d_hinge_loss,
                                 g_hinge_loss, get_loss, register_loss)

__all__ = ["DLoss", "GANLoss", "GLoss", "LOSSES", "auxiliary_classifier_parts", "d_hinge_loss", "g_hinge_loss",
           "get_loss", "register_loss"]
