"""Helpers shared by tests that need networks whose output depends visibly on the label."""

from __future__ import annotations

import torch

from sagan.models.layers import ConditionalBatchNorm2d


@torch.no_grad()
def spread_class_conditioning(G: torch.nn.Module, std: float = 0.3) -> torch.nn.Module:
    """Move G's class-conditional BN gains/biases off their init (gain 1, bias 0), where every label
    gives the same output, so that labels change G's images."""
    for m in G.modules():
        if isinstance(m, ConditionalBatchNorm2d):
            m.gain.weight.normal_(1.0, std)
            m.bias.weight.normal_(0.0, std)
    return G
