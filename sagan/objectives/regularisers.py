"""Regularisers of D's loss, registered by name like the losses; each is switched on by its config keys.

A regulariser adds named parts to D's loss in every D micro-batch (``d_terms``; the training loop logs
every part, so they appear in the log line and TensorBoard as ``loss/d_loss_<name>``), may update a
state after each D update (``end_d_update``, with the update's mean logits) and keeps that state in
checkpoints (``state_dict`` / ``load_state_dict``: exact resume).

    lecam   Tseng et al. 2021, "Regularizing Generative Adversarial Networks under Limited Data":
            lambda * (E[relu(D(x) - a_F)^2] + E[relu(a_R - D(G(z)))^2]), with a_R / a_F moving averages
            (decay ``train.lecam_decay``) of D's mean output on real / generated images. The paper writes
            the squared distances (its eq. 3); the authors' released code and StudioGAN keep only the
            side that moves towards the other distribution (the ReLU), which is what is implemented.
            Switched on by ``train.lecam_weight`` > 0 (StudioGAN's DiffAugment configs: 0.3, decay
            0.99); before step ``train.lecam_start`` (1000 there) the averages follow the latest value
            and the term is 0.

Adding a regulariser: a :class:`Regulariser` subclass and one :func:`register_regulariser` line (from
any imported module, or a plugin: :mod:`sagan.plugins`), with ``enabled(train_config)`` saying when a config uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..checkpoint import scalar_state
from ..registry import REGULARISERS


class Regulariser:
    name = "regulariser"

    def d_terms(self, real_logits: torch.Tensor, fake_logits: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """Named parts (fp32 scalars) added to D's loss of one micro-batch at G step ``step``."""
        raise NotImplementedError

    def end_d_update(self, real_mean: torch.Tensor, fake_mean: torch.Tensor, step: int) -> None:
        """After each D update: D's mean logits over the update (all processes averaged)."""

    def describe(self) -> str:
        """One start-up line."""
        return self.name

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        pass


@dataclass(frozen=True)
class RegulariserEntry:
    name: str
    enabled: Callable[..., bool]  # train config -> whether the run uses it
    build: Callable[..., Regulariser]  # (config, device) -> Regulariser
    description: str


# REGULARISERS (sagan.registry.REGULARISERS) is filled below


def register_regulariser(name: str, enabled: Callable[..., bool], build: Callable[..., Regulariser],
                         description: str) -> RegulariserEntry:
    return REGULARISERS.register(name, RegulariserEntry(name, enabled, build, description))


def build_regularisers(cfg, device) -> dict[str, Regulariser]:
    """The regularisers ``cfg`` switches on, by name (empty for the paper's setting)."""
    return {n: e.build(cfg, device) for n, e in REGULARISERS.items() if e.enabled(cfg.train)}


# --------------------------------------------------------------------------------------------------
# LeCam


class LeCam(Regulariser):
    name = "lecam"

    def __init__(self, weight: float, decay: float, start: int, device):
        self.weight, self.decay, self.start = weight, decay, start
        self.ema_real = torch.zeros((), device=device)
        self.ema_fake = torch.zeros((), device=device)

    def describe(self) -> str:
        return (f"regulariser: LeCam, weight {self.weight:g}, moving averages of D's outputs with decay "
                f"{self.decay:g}, applied after step {self.start} (loss part d_loss_lecam)")

    def d_terms(self, real_logits, fake_logits, step):
        if step <= self.start:
            return {"d_loss_lecam": torch.zeros((), device=real_logits.device)}
        term = (F.relu(real_logits.float() - self.ema_fake).pow(2).mean()
                + F.relu(self.ema_real - fake_logits.float()).pow(2).mean())
        return {"d_loss_lecam": self.weight * term}

    def end_d_update(self, real_mean, fake_mean, step):
        decay = self.decay if step >= self.start else 0.0
        self.ema_real = self.ema_real * decay + real_mean.detach().float() * (1 - decay)
        self.ema_fake = self.ema_fake * decay + fake_mean.detach().float() * (1 - decay)

    def state_dict(self):
        return {"ema_real": self.ema_real.detach().cpu().clone(), "ema_fake": self.ema_fake.detach().cpu().clone()}

    def load_state_dict(self, state):
        for k, v in scalar_state(state, ("ema_real", "ema_fake"), "LeCam").items():
            setattr(self, k, v.to(self.ema_real.device))


register_regulariser("lecam", lambda t: t.lecam_weight > 0,
                     lambda cfg, device: LeCam(cfg.train.lecam_weight, cfg.train.lecam_decay, cfg.train.lecam_start,
                                               device),
                     "LeCam (Tseng et al. 2021): D's outputs against moving averages of the other side")


# --------------------------------------------------------------------------------------------------
# zero-centred gradient penalties on D's inputs (issue 28): R1 on real images (Mescheder et al. 2018),
# R2 on generated ones (R3GAN, Huang et al. 2024); switched on by train.r1_gamma / train.r2_gamma and
# applied by the training step (sagan.training.step), lazily with train.reg_interval (StyleGAN2)


def math_attention():
    """Context in which D's attention runs PyTorch's math SDPA kernel: the fused (flash / memory-efficient,
    CPU flash) kernels have no second derivative (pytorch/pytorch#116350, #117974), which a penalty on
    D's input gradient needs."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(SDPBackend.MATH)


def squared_gradient_norms(outputs: torch.Tensor, inputs: list[torch.Tensor],
                           create_graph: bool = True) -> list[torch.Tensor]:
    """For each tensor of ``inputs`` (B, ...): the per-row squared L2 norm (B,), in fp32 (or float64), of the
    gradient of ``outputs.sum()`` with respect to it. Only the gradients with respect to ``inputs`` are computed:
    autograd skips the weight gradients of every layer on the way (StyleGAN2's ``no_weight_gradients``
    saving), and nothing is accumulated into any ``.grad``. ``create_graph``: the norms can be
    differentiated again (a penalty that trains D's weights)."""
    grads = torch.autograd.grad(_wide(outputs).sum(), inputs, create_graph=create_graph)
    return [_wide(g).square().flatten(1).sum(1) for g in grads]


def _wide(t: torch.Tensor) -> torch.Tensor:
    """fp32 for low-precision tensors (bf16 autocast: the norms in fp32), float64 kept."""
    return t if t.dtype == torch.float64 else t.float()


def input_gradient_norms(D, images: torch.Tensor, labels: torch.Tensor, augment=None,
                         create_graph: bool = True) -> torch.Tensor:
    """||d sum_i D(x_i) / d x_j||^2 for every image x_j of ``images`` (B, C, H, W): shape (B,), fp32, the
    square summed over C·H·W. ``augment`` (optional, differentiable) is applied after the images are
    marked as inputs, so the gradient is taken before augmentation and flows through it (R3GAN's code).
    D runs with the math attention kernel (:func:`math_attention`). With ``create_graph`` the norms are
    differentiable with respect to D's weights: ``(gamma / 2) * norms.mean()`` is the R1 (real images) or
    R2 (generated images) penalty. D must treat the images of a batch independently (no batch norm), as
    sagan's does; the images themselves are detached (no gradient reaches whatever made them)."""
    x = images.detach().requires_grad_(True)
    with math_attention():
        logits = D(augment(x) if augment is not None else x, labels)
    return squared_gradient_norms(logits, [x], create_graph)[0]
# BigGAN's orthogonal regularisation of G (issue 29: train.ortho_reg)


def orthogonal_penalty(G: torch.nn.Module) -> torch.Tensor:
    """BigGAN's orthogonal regularisation (Brock et al. 2019, section 3.1): the sum over G's parameters
    with two or more dimensions, except the shared class embedding ``G.shared``, of
    ``||W W^T * (1 - I)||_F^2`` with W viewed as (out, -1). Under spectral norm the parameter is the raw
    weight (``parametrizations.weight.original``), as BigGAN-PyTorch's ``utils.ortho`` sees it.

    G's loss adds ``train.ortho_reg / 2`` times this: its gradient is then BigGAN-PyTorch's
    ``2 beta ((W W^T) * (1 - I)) W``. In fp32 (or the weights' fp64) whatever the training precision."""
    shared = getattr(G, "shared", None)
    skip = {id(p) for p in shared.parameters()} if isinstance(shared, torch.nn.Module) else set()
    terms = []
    for p in G.parameters():
        if p.dim() < 2 or id(p) in skip:
            continue
        w = p.to(torch.promote_types(p.dtype, torch.float32)).reshape(p.shape[0], -1)
        gram = w @ w.t()
        terms.append((gram - torch.diag_embed(torch.diagonal(gram))).square().sum())
    return torch.stack(terms).sum() if terms else torch.zeros((), device=next(G.parameters()).device)
