"""Helpers of the sampling tests: a demo-sized checkpoint whose generator depends strongly on the label, and
sample.py driven through click."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from model_utils import spread_class_conditioning
from sagan.checkpoint import save_checkpoint
from sagan.config import load_config
from sagan.models import Discriminator, Generator
from sagan.commands.sample import main

NAMES = [f"class_{i}" for i in range(10)]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A demo-sized checkpoint whose generator output depends strongly on the label."""
    torch.manual_seed(0)
    cfg = load_config("demo", overrides=["model.g_ch=16", "model.d_ch=16"])
    G, D = Generator.from_config(cfg), Discriminator.from_config(cfg)
    spread_class_conditioning(G, std=0.5)
    with torch.no_grad():
        G(torch.randn(16, G.z_dim), torch.arange(16) % 10)  # running BN statistics
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    save_checkpoint(path, dict(step=5, config=cfg.to_dict(), G=G.state_dict(), D=D.state_dict(), G_ema=G.state_dict(),
                               opt_G={}, opt_D={}, rng={}, data={}, class_names=NAMES))
    return path


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result
