"""Shared pytest fixtures: small configs and networks that build in milliseconds."""

from __future__ import annotations

import pytest
import torch

from sagan.config import load_config


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def tiny_cfg():
    """The demo preset at 32px with narrow networks (G and D ~100k parameters each)."""
    return load_config("demo", overrides=["model.g_ch=16", "model.d_ch=16"])
