"""Hinge adversarial loss (Lim & Ye 2017; Miyato et al. 2018), as SAGAN uses it (section 4).

    L_D = E_x[relu(1 - D(x, y))] + E_z[relu(1 + D(G(z), y))]
    L_G = -E_z[D(G(z), y)]

Losses are computed in fp32 whatever the autocast dtype of the logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def d_hinge_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns ``(d_loss, d_loss_real, d_loss_fake)``; ``d_loss = d_loss_real + d_loss_fake``."""
    d_loss_real = F.relu(1.0 - logits_real.float()).mean()
    d_loss_fake = F.relu(1.0 + logits_fake.float()).mean()
    return d_loss_real + d_loss_fake, d_loss_real, d_loss_fake


def g_hinge_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    return -logits_fake.float().mean()
