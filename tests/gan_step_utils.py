"""Helpers of the training-step tests: the demo preset at narrow widths, and a production GANStep on an
accelerate Accelerator on CPU with the data stream that feeds it."""

from __future__ import annotations

import torch
from accelerate import Accelerator

from sagan.config import load_config
from sagan.data import open_dataset
from sagan.data.stream import DataStream, EpochBatchSampler
from sagan.models import Discriminator, Generator
from sagan.training.step import GANStep

TINY = ["model.g_ch=16", "model.d_ch=16", "data.demo_size=64", "train.batch_size=8", "train.log_every=1",
        "train.num_workers=0", "train.sample_every=1000", "train.checkpoint_every=1000"]


def tiny(*overrides: str):
    return load_config("demo", overrides=TINY + list(overrides))


def build_step(cfg):
    torch.manual_seed(0)
    G, D = Generator.from_config(cfg), Discriminator.from_config(cfg)
    ds = open_dataset(None, resolution=32, demo_size=cfg.data.demo_size, demo_classes=10)
    t = cfg.train
    stream = DataStream(ds, EpochBatchSampler(len(ds), t.batch_size, t.grad_accum, 0, 1, t.seed), 0, False)
    return GANStep(cfg, G, D, Accelerator(cpu=True)), stream
