"""Adversarial losses, registered by name (``train.loss``); SAGAN uses the hinge loss (section 4).

A loss gives D's loss as named parts, whose sum is what D minimises (the training loop logs every part),
and G's loss. All are computed in fp32 whatever the autocast dtype of the logits.

    hinge        L_D = E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]     L_G = -E[D(G(z))]
                 (Lim & Ye 2017; Miyato et al. 2018; SAGAN section 4)
    ns           L_D = E[softplus(-D(x))] + E[softplus(D(G(z)))]     L_G = E[softplus(-D(G(z)))]
                 (Goodfellow et al. 2014, the non-saturating G loss, in logit form)
    wasserstein  L_D = -E[D(x)] + E[D(G(z))]                          L_G = -E[D(G(z))]
                 (Arjovsky et al. 2017 without clipping or gradient penalty: spectral norm bounds D)

Adding a loss: write its two functions and one ``register_loss`` line below, or in your own
module loaded as a plugin (:mod:`sagan.plugins`: ``--plugin MODULE``, ``SAGAN_PLUGINS`` or the ``sagan.plugins``
entry-point group).

AC-GAN (Odena et al. 2017; ``model.d_cond: ac``) adds to any of them the cross-entropy of D's auxiliary
classifier: on real and generated images to D's loss, on generated images to G's
(:func:`auxiliary_classifier_parts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..registry import LOSSES

DLoss = Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]
GLoss = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class GANLoss:
    name: str
    d_parts: DLoss  # (logits_real, logits_fake) -> {"d_loss_real": ..., "d_loss_fake": ...}; D minimises the sum
    g_loss: GLoss  # logits_fake -> G's loss
    description: str

    def d_loss(self, logits_real: torch.Tensor, logits_fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """D's total loss and its named parts."""
        parts = self.d_parts(logits_real.float(), logits_fake.float())
        return sum(parts.values()), parts

    def g(self, logits_fake: torch.Tensor) -> torch.Tensor:
        return self.g_loss(logits_fake.float())


# LOSSES (sagan.registry.LOSSES) is filled below


def register_loss(name: str, d_parts: DLoss, g_loss: GLoss, description: str) -> GANLoss:
    return LOSSES.register(name, GANLoss(name, d_parts, g_loss, description))


def get_loss(name: str) -> GANLoss:
    """The loss registered as ``name`` (an unknown name is one line listing the registered ones)."""
    return LOSSES[name]


# --------------------------------------------------------------------------------------------------
# hinge (the paper's)


def d_hinge_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns ``(d_loss, d_loss_real, d_loss_fake)``; ``d_loss = d_loss_real + d_loss_fake``."""
    d_loss_real = F.relu(1.0 - logits_real.float()).mean()
    d_loss_fake = F.relu(1.0 + logits_fake.float()).mean()
    return d_loss_real + d_loss_fake, d_loss_real, d_loss_fake


def g_hinge_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    return -logits_fake.float().mean()


def _hinge_parts(real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
    _, d_real, d_fake = d_hinge_loss(real, fake)
    return {"d_loss_real": d_real, "d_loss_fake": d_fake}


register_loss("hinge", _hinge_parts, g_hinge_loss, "hinge (SAGAN, SNGAN-projection)")

# --------------------------------------------------------------------------------------------------
# non-saturating (softplus form: -log sigmoid(t) = softplus(-t))

register_loss(
    "ns",
    lambda real, fake: {"d_loss_real": F.softplus(-real).mean(), "d_loss_fake": F.softplus(fake).mean()},
    lambda fake: F.softplus(-fake).mean(),
    "non-saturating (original GAN)",
)

# --------------------------------------------------------------------------------------------------
# Wasserstein (no gradient penalty)

register_loss(
    "wasserstein",
    lambda real, fake: {"d_loss_real": -real.mean(), "d_loss_fake": fake.mean()},
    lambda fake: -fake.mean(),
    "Wasserstein (no gradient penalty)",
)


# --------------------------------------------------------------------------------------------------
# AC-GAN's auxiliary classifier term (added to whichever adversarial loss is chosen)


def auxiliary_classifier_parts(class_logits: torch.Tensor, labels: torch.Tensor,
                               groups: dict[str, int]) -> dict[str, torch.Tensor]:
    """Cross-entropy of class logits (B, K) with labels (B,), one mean per consecutive group of rows:
    ``groups`` {part name: rows}, e.g. {"d_loss_ac_real": 64, "d_loss_ac_fake": 64}; in fp32."""
    names, sizes = list(groups), list(groups.values())
    return {n: F.cross_entropy(c.float(), y) for n, c, y in zip(names, class_logits.split(sizes), labels.split(sizes))}
