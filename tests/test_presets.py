"""Presets and configurable widths: the old presets' networks are unchanged, the published small-scale
presets build exactly the networks of their sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sagan.config import load_config
from sagan.models import Discriminator, Generator, count_parameters

RECORDED = json.loads((Path(__file__).parent / "data" / "preset_networks.json").read_text())


@pytest.mark.parametrize("name", ["imagenet128", "imagenet128_feat32", "demo"])
def test_existing_presets_keep_their_state_dict_keys_and_shapes(name):
    """Recorded from the networks as built before widths became configurable (commit 736fdda): old
    checkpoints keep loading."""
    cfg = load_config(name, overrides=["model.init=normal"])  # shapes only: skip orthogonal init's QRs
    for net, cls in (("G", Generator), ("D", Discriminator)):
        shapes = {k: list(v.shape) for k, v in cls.from_config(cfg).state_dict().items()}
        assert shapes == RECORDED[name][net]["shapes"], f"{name} {net}"


def test_demo_networks_are_built_bit_for_bit_as_before():
    """Same seed, same tensors: also the order in which parameters draw their initial values is unchanged."""
    cfg = load_config("demo")
    for net, cls in (("G", Generator), ("D", Discriminator)):
        torch.manual_seed(0)
        sums = {k: float(v.double().sum()) for k, v in cls.from_config(cfg).state_dict().items() if v.is_floating_point()}
        recorded = RECORDED["demo"][net]["sums"]
        assert sums.keys() == recorded.keys()
        for k, v in recorded.items():
            assert sums[k] == pytest.approx(v, rel=1e-6, abs=1e-6), f"demo {net} {k}"
