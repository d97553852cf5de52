"""Training a SAGAN: the loop, one GAN step, the losses, EMA, logging, evaluations during training and
run folders."""

from .ema import EMA
from .loop import EpochBatchSampler, Trainer, TrainingDiverged, make_accelerator, train
from .losses import get_loss, register_loss
from .step import GANStep

__all__ = ["EMA", "EpochBatchSampler", "GANStep", "Trainer", "TrainingDiverged", "get_loss",
           "make_accelerator", "register_loss", "train"]
