"""Adversarial losses, registered by name (``train.loss``); SAGAN uses the hinge loss (section 4).

A loss gives D's loss as named parts, whose sum is what D minimises (the training loop logs every part),
and G's loss. All are computed in fp32 whatever the autocast dtype of the logits.

    hinge        L_D = E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]     L_G = -E[D(G(z))]
                 (Lim & Ye 2017; Miyato et al. 2018; SAGAN section 4)
    ns           L_D = E[softplus(-D(x))] + E[softplus(D(G(z)))]     L_G = E[softplus(-D(G(z)))]
                 (Goodfellow et al. 2014, the non-saturating G loss, in logit form)
    wasserstein  L_D = -E[D(x)] + E[D(G(z))]                          L_G = -E[D(G(z))]
                 (Arjovsky et al. 2017 without clipping or gradient penalty: spectral norm bounds D)
    rpgan        L_D = E[softplus(-(D(x_i) - D(G(z_i))))]             L_G = E[softplus(-(D(G(z_i)) - D(x_i)))]
                 the relativistic pairing loss (Jolicoeur-Martineau 2019; R3GAN, Huang et al. 2024, with
                 the R1 + R2 penalties of ``train.r1_gamma`` / ``train.r2_gamma``)

Losses are called ``d_loss(logits_real, logits_fake)`` and ``g(logits_fake, logits_real)``. Only a loss
registered with ``g_reads_real=True`` (rpgan) reads the real logits in G's step: the training step runs D
on real images there only for such a loss, so the others keep their values and their cost.

Pairing (rpgan): the i-th real image of a micro-batch is paired with its i-th generated image, each
with its own label. In D's update these are the micro-batch's real images and the fakes of its latents.
In G's update, micro-batch m of process r pairs its fakes with the real images of micro-batch m of
process r of the step's last D update (the global batch D saw last, cut the same way: slice m * P + r):
no data is drawn for G, and which real image meets which latent depends only on (seed, step, global
micro-batch index), not on how the batch is split into processes x accumulation steps (R3GAN's code
likewise pairs G's fakes with the iteration's batch of real images).

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
GLoss = Callable[..., torch.Tensor]  # (logits_fake) -> loss, or (logits_fake, logits_real) when g_reads_real


@dataclass(frozen=True)
class GANLoss:
    name: str
    d_parts: DLoss  # (logits_real, logits_fake) -> {"d_loss_real": ..., "d_loss_fake": ...}; D minimises the sum
    g_loss: GLoss  # logits_fake -> G's loss ((logits_fake, logits_real) -> G's loss when g_reads_real)
    description: str
    g_reads_real: bool = False  # G's loss needs D's logits on real images (relativistic losses)

    def d_loss(self, logits_real: torch.Tensor, logits_fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """D's total loss and its named parts."""
        parts = self.d_parts(logits_real.float(), logits_fake.float())
        return sum(parts.values()), parts

    def g(self, logits_fake: torch.Tensor, logits_real: torch.Tensor | None = None) -> torch.Tensor:
        """G's loss; ``logits_real`` (D on the paired real images) is read only when ``g_reads_real``."""
        if not self.g_reads_real:
            return self.g_loss(logits_fake.float())
        if logits_real is None or logits_real.shape != logits_fake.shape:
            raise ValueError(f"loss {self.name!r}: G's loss pairs each fake with a real image; give logits_real "
                             f"of the fakes' shape {tuple(logits_fake.shape)}")
        return self.g_loss(logits_fake.float(), logits_real.float())


# LOSSES (sagan.registry.LOSSES) is filled below


def register_loss(name: str, d_parts: DLoss, g_loss: GLoss, description: str,
                  g_reads_real: bool = False) -> GANLoss:
    return LOSSES.register(name, GANLoss(name, d_parts, g_loss, description, g_reads_real))


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
# relativistic pairing (RpGAN; R3GAN's loss): softplus(-(D(x_i) - D(G(z_i)))), the i-th real with the i-th fake

register_loss(
    "rpgan",
    lambda real, fake: {"d_loss_pair": F.softplus(fake - real).mean()},
    lambda fake, real: F.softplus(real - fake).mean(),
    "relativistic pairing (RpGAN; R3GAN with train.r1_gamma and train.r2_gamma)",
    g_reads_real=True,
)


# --------------------------------------------------------------------------------------------------
# AC-GAN's auxiliary classifier term (added to whichever adversarial loss is chosen)


def auxiliary_classifier_parts(class_logits: torch.Tensor, labels: torch.Tensor,
                               groups: dict[str, int]) -> dict[str, torch.Tensor]:
    """Cross-entropy of class logits (B, K) with labels (B,), one mean per consecutive group of rows:
    ``groups`` {part name: rows}, e.g. {"d_loss_ac_real": 64, "d_loss_ac_fake": 64}; in fp32."""
    names, sizes = list(groups), list(groups.values())
    return {n: F.cross_entropy(c.float(), y) for n, c, y in zip(names, class_logits.split(sizes), labels.split(sizes))}
