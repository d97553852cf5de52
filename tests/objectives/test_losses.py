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


def test_relativistic_pairing_loss_by_hand():
    """rpgan (R3GAN): L_D = mean softplus(-(D(x_i) - D(G(z_i)))), L_G = mean softplus(-(D(G(z_i)) - D(x_i))),
    the i-th real paired with the i-th fake."""
    rp = LOSSES["rpgan"]
    real = torch.tensor([1.0, 0.0, 3.0])
    fake = torch.tensor([0.0, 2.0, 3.0])
    sp = lambda t: math.log1p(math.exp(t))  # noqa: E731
    total, parts = rp.d_loss(real, fake)
    assert list(parts) == ["d_loss_pair"]
    assert total.item() == pytest.approx((sp(-1.0) + sp(2.0) + sp(0.0)) / 3)
    assert rp.g(fake, real).item() == pytest.approx((sp(1.0) + sp(-2.0) + sp(0.0)) / 3)
    # the pairing matters: reversing the reals changes the loss (it is not a function of the means)
    assert rp.d_loss(real.flip(0), fake)[0].item() != pytest.approx(total.item())


def test_relativistic_g_loss_needs_the_paired_real_logits():
    rp = LOSSES["rpgan"]
    with pytest.raises(ValueError, match="pairs each fake with a real image"):
        rp.g(torch.zeros(3))
    with pytest.raises(ValueError, match="pairs each fake"):
        rp.g(torch.zeros(3), torch.zeros(2))


def test_losses_that_do_not_read_real_logits_ignore_them():
    fake, real = torch.tensor([0.5, -1.0]), torch.tensor([7.0, 3.0])
    for name in ("hinge", "ns", "wasserstein"):
        loss = LOSSES[name]
        assert not loss.g_reads_real
        assert torch.equal(loss.g(fake, real), loss.g(fake)), name
    assert LOSSES["rpgan"].g_reads_real
