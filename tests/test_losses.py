"""The registered adversarial losses (SAGAN's hinge, section 4; non-saturating; Wasserstein), checked
against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from sagan.training.losses import LOSSES, d_hinge_loss, g_hinge_loss


def test_d_hinge_loss_by_hand():
    # real logits 2, 0.5, -1 -> relu(1 - x) = 0, 0.5, 2 -> mean 2.5 / 3
    # fake logits -3, 0, 0.5 -> relu(1 + x) = 0, 1, 1.5 -> mean 2.5 / 3
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-3.0, 0.0, 0.5])
    loss, loss_real, loss_fake = d_hinge_loss(real, fake)
    assert loss_real.item() == pytest.approx(2.5 / 3)
    assert loss_fake.item() == pytest.approx(2.5 / 3)
    assert loss.item() == pytest.approx(5.0 / 3)


def test_d_hinge_loss_is_zero_beyond_the_margin():
    loss, _, _ = d_hinge_loss(torch.tensor([1.0, 7.0]), torch.tensor([-1.0, -4.0]))
    assert loss.item() == 0.0


def test_g_hinge_loss_by_hand():
    # L_G = -mean D(G(z)): no margin on the generator side
    assert g_hinge_loss(torch.tensor([2.0, -1.0, 5.0])).item() == pytest.approx(-2.0)


def test_losses_are_fp32_for_low_precision_logits():
    real = torch.tensor([0.3, -0.2], dtype=torch.bfloat16)
    fake = torch.tensor([0.1, 0.4], dtype=torch.bfloat16)
    assert d_hinge_loss(real, fake)[0].dtype == torch.float32
    assert g_hinge_loss(fake).dtype == torch.float32


def test_d_hinge_gradients_by_hand():
    # d/dx relu(1 - x) = -1 inside the margin, 0 outside; averaged over the batch of 2
    real = torch.tensor([0.0, 2.0], requires_grad=True)
    fake = torch.tensor([0.0, -2.0], requires_grad=True)
    d_hinge_loss(real, fake)[0].backward()
    assert real.grad.tolist() == [-0.5, 0.0]
    assert fake.grad.tolist() == [0.5, 0.0]


def test_non_saturating_loss_by_hand():
    # L_D = mean softplus(-D(x)) + mean softplus(D(G(z))), L_G = mean softplus(-D(G(z)))
    # softplus(t) = log(1 + e^t): softplus(0) = log 2, softplus(-log 3) = log(4/3), softplus(log 3) = log 4
    ns = LOSSES["ns"]
    real = torch.tensor([0.0, math.log(3)])
    fake = torch.tensor([-math.log(3), 0.0])
    total, parts = ns.d_loss(real, fake)
    assert parts["d_loss_real"].item() == pytest.approx((math.log(2) + math.log(4 / 3)) / 2)
    assert parts["d_loss_fake"].item() == pytest.approx((math.log(4 / 3) + math.log(2)) / 2)
    assert total.item() == pytest.approx(math.log(2) + math.log(4 / 3))
    assert ns.g(fake).item() == pytest.approx((math.log(4) + math.log(2)) / 2)  # G wants D(G(z)) large


def test_wasserstein_loss_by_hand():
    # L_D = -mean D(x) + mean D(G(z)), L_G = -mean D(G(z)); no margin, no clipping
    w = LOSSES["wasserstein"]
    real = torch.tensor([3.0, -1.0])
    fake = torch.tensor([0.5, 2.5])
    total, parts = w.d_loss(real, fake)
    assert parts["d_loss_real"].item() == pytest.approx(-1.0)
    assert parts["d_loss_fake"].item() == pytest.approx(1.5)
    assert total.item() == pytest.approx(0.5)
    assert w.g(fake).item() == pytest.approx(-1.5)


def test_every_registered_loss_is_fp32_for_low_precision_logits():
    real = torch.tensor([0.3, -0.2], dtype=torch.bfloat16)
    fake = torch.tensor([0.1, 0.4], dtype=torch.bfloat16)
    for loss in LOSSES.values():
        assert loss.d_loss(real, fake)[0].dtype == torch.float32 and loss.g(fake, real).dtype == torch.float32, loss.name
