"""Self-attention (SAGAN section 3) as a member of the non-local block family (Wang et al. 2018).

For a feature map x (B, C, H, W) with N = H*W query positions:

    queries  f(x) = theta(x)   1x1 SN conv, C -> C/8         (N positions)
    keys     g(x) = phi(x)     1x1 SN conv, C -> C/8, 2x2 max-pool  (N/4 positions)
    values   h(x)              1x1 SN conv, C -> C/2, 2x2 max-pool
    o        = v(attention . values)   1x1 SN conv, C/2 -> C
    y        = gamma * o + x, gamma a learnable scalar initialised to 0 (SAGAN section 3)

The C/2 value bottleneck and the max-pooled keys/values are those of the official release and of
the non-local paper (section 3.3, "subsampling"). The pairwise function is a config choice:

    embedded_gaussian  softmax_j(theta_i . phi_j)          SAGAN's; no 1/sqrt(d) scaling
    gaussian           softmax_j(x_i . x_j)                 no embeddings (queries/keys are x itself)
    dot_product        (theta_i . phi_j) / N_keys
    concatenation      relu(w . [theta_i; phi_j]) / N_keys

Softmax variants run through ``F.scaled_dot_product_attention(scale=1)``, which never builds the
(N, N_keys) matrix (memory linear in positions); the dot-product variant is computed as
theta (phi^T h) / N_keys, also linear. The explicit map is built only when asked for (visualisation)
and for the concatenation variant, whose pairwise ReLU cannot be factored.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import ATTN_MODES
from .layers import sn_conv, sn_linear

SOFTMAX_MODES = ("embedded_gaussian", "gaussian")


class SelfAttention(nn.Module):
    def __init__(self, channels: int, mode: str = "embedded_gaussian", pool: bool = True, *, init: str = "ortho",
                 sn_eps: float = 1e-6, use_sn: bool = True):
        super().__init__()
        if mode not in ATTN_MODES:
            raise ValueError(f"attention mode must be one of {ATTN_MODES}, got {mode!r}")
        if channels % 8:
            raise ValueError(f"attention needs channels divisible by 8, got {channels}")
        self.channels, self.mode, self.pool = channels, mode, pool
        c8, c2 = channels // 8, channels // 2
        kw = dict(bias=False, init=init, eps=sn_eps, use_sn=use_sn)  # the official release's attention convs have no bias
        if mode != "gaussian":
            self.theta = sn_conv(channels, c8, 1, **kw)
            self.phi = sn_conv(channels, c8, 1, **kw)
        self.g = sn_conv(channels, c2, 1, **kw)
        self.o = sn_conv(c2, channels, 1, **kw)
        if mode == "concatenation":
            self.concat_w = sn_linear(2 * c8, 1, **kw)  # w in relu(w . [theta_i; phi_j])
        self.gamma = nn.Parameter(torch.zeros(()))  # SAGAN section 3: start as the identity

    def _subsample(self, t: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(t, 2) if self.pool else t

    @staticmethod
    def _tokens(t: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, H*W, C); a view for channels_last inputs."""
        return t.flatten(2).transpose(1, 2)

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, int]]:
        """Queries (B, N, d), keys (B, Nk, d), values (B, Nk, C/2) and the key grid (Hk, Wk)."""
        if self.mode == "gaussian":
            q, k = x, self._subsample(x)
        else:
            q, k = self.theta(x), self._subsample(self.phi(x))
        v = self._subsample(self.g(x))
        return self._tokens(q), self._tokens(k), self._tokens(v), tuple(k.shape[-2:])

    def attention_map(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Explicit weights (B, N, Nk) in fp32; rows sum to 1 for the softmax modes."""
        q, k = q.float(), k.float()
        if self.mode in SOFTMAX_MODES:
            return torch.softmax(q @ k.transpose(1, 2), dim=-1)
        if self.mode == "dot_product":
            return (q @ k.transpose(1, 2)) / k.shape[1]
        c8 = q.shape[-1]
        w = self.concat_w.weight.float()[0]
        a, b = q @ w[:c8], k @ w[c8:]  # w . [theta_i; phi_j] = w_theta . theta_i + w_phi . phi_j
        return F.relu(a[:, :, None] + b[:, None, :]) / k.shape[1]

    @staticmethod
    def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """softmax(q k^T) v without the (N, Nk) matrix; no 1/sqrt(d) temperature in SAGAN, hence scale=1.

        Fused (flash) kernels need one head dim for q, k and v; zero-padding the narrower side is exact
        (zeros add nothing to q.k, and padded value columns are sliced off) and avoids the math fallback,
        which materialises the map (and is slower).
        """
        dqk, dv = q.shape[-1], v.shape[-1]
        if dqk < dv:
            q, k = F.pad(q, (0, dv - dqk)), F.pad(k, (0, dv - dqk))
        elif dv < dqk:
            v = F.pad(v, (0, dqk - dv))
        # fused kernels also need unit stride in the last dim: free for channels_last features
        q, k, v = (t.contiguous().unsqueeze(1) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0)
        return out.squeeze(1)[..., :dv]

    def forward(self, x: torch.Tensor, return_attn: bool = False):
        B, C, H, W = x.shape
        q, k, v, (hk, wk) = self.qkv(x)
        attn = None
        if return_attn or self.mode == "concatenation":
            attn = self.attention_map(q, k)
            out = (attn @ v.float()).to(v.dtype)
        elif self.mode == "dot_product":
            out = q @ ((k.transpose(1, 2) @ v) / k.shape[1])  # associativity: never forms (N, Nk)
        else:
            out = self._sdpa(q, k, v)
        out = out.transpose(1, 2).reshape(B, C // 2, H, W)
        y = x + self.gamma * self.o(out)
        if return_attn:
            return y, attn.view(B, H, W, hk, wk)
        return y

    def extra_repr(self) -> str:
        return f"channels={self.channels}, mode={self.mode}, pool={self.pool}"
