"""Self-attention as SAGAN section 3 and the non-local paper specify it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sagan.models.attention import SelfAttention
from sagan.config import ATTN_MODES


def explicit_sagan_attention(m: SelfAttention, x: torch.Tensor) -> torch.Tensor:
    """The paper's formula written out: beta = softmax(f(x)^T g(x)), o = v(h(x) beta^T), y = gamma o + x."""
    B, C, H, W = x.shape
    f = m.theta(x).flatten(2)  # (B, C/8, N)
    g = F.max_pool2d(m.phi(x), 2).flatten(2)  # (B, C/8, N/4)
    h = F.max_pool2d(m.g(x), 2).flatten(2)  # (B, C/2, N/4)
    beta = torch.softmax(torch.bmm(f.transpose(1, 2), g), dim=-1)  # (B, N, N/4)
    o = torch.bmm(h, beta.transpose(1, 2)).view(B, C // 2, H, W)
    return x + m.gamma * m.o(o)


def test_gamma_is_zero_at_init_and_block_is_identity():
    m = SelfAttention(64)
    assert m.gamma.shape == () and m.gamma.item() == 0.0
    x = torch.randn(2, 64, 8, 8)
    assert torch.equal(m(x), x)


@pytest.mark.parametrize("mode", ATTN_MODES)
def test_every_nonlocal_variant_keeps_shape_and_learns(mode):
    m = SelfAttention(32, mode)
    with torch.no_grad():
        m.gamma.fill_(0.5)
    x = torch.randn(2, 32, 8, 8, requires_grad=True)
    y = m(x)
    assert y.shape == x.shape
    assert not torch.allclose(y, x)
    y.square().mean().backward()
    assert m.gamma.grad is not None and m.gamma.grad.abs() > 0
    y2, attn = m(x, return_attn=True)
    torch.testing.assert_close(y2, y)
    assert attn.shape == (2, 8, 8, 4, 4)


@pytest.mark.parametrize("mode", ["embedded_gaussian", "gaussian"])
def test_softmax_attention_rows_sum_to_one(mode):
    m = SelfAttention(32, mode)
    _, attn = m(torch.randn(3, 32, 16, 16), return_attn=True)
    rows = attn.flatten(3).sum(-1)
    torch.testing.assert_close(rows, torch.ones_like(rows))
    assert (attn >= 0).all()


def test_sdpa_path_equals_explicit_softmax_path():
    m = SelfAttention(64)
    with torch.no_grad():
        m.gamma.fill_(0.7)
    m.eval()
    x = torch.randn(2, 64, 16, 16)
    fast = m(x)
    via_map, _ = m(x, return_attn=True)
    torch.testing.assert_close(fast, explicit_sagan_attention(m, x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast, via_map, rtol=1e-5, atol=1e-5)


def test_dot_product_linear_path_equals_explicit_map():
    m = SelfAttention(32, "dot_product").eval()
    with torch.no_grad():
        m.gamma.fill_(1.0)
    x = torch.randn(2, 32, 8, 8)
    fast = m(x)
    slow, attn = m(x, return_attn=True)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    # f(x_i, x_j) = theta_i . phi_j / N_keys
    q, k, _, _ = m.qkv(x)
    torch.testing.assert_close(attn.flatten(3).flatten(1, 2), q @ k.transpose(1, 2) / k.shape[1])


def test_no_pooling_uses_every_position_as_key():
    m = SelfAttention(16, pool=False)
    _, attn = m(torch.randn(1, 16, 8, 8), return_attn=True)
    assert attn.shape == (1, 8, 8, 8, 8)


def test_channels_last_and_bf16_autocast():
    m = SelfAttention(32)
    with torch.no_grad():
        m.gamma.fill_(0.3)
    x = torch.randn(2, 32, 8, 8)
    ref = m(x)
    y = m(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        yb = m(x)
    torch.testing.assert_close(yb.float(), ref, rtol=0.05, atol=0.05)


def test_channels_must_divide_by_eight():
    with pytest.raises(ValueError, match="divisible by 8"):
        SelfAttention(12)
