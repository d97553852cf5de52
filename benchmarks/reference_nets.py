"""A reference formulation of the SAGAN networks, the way StudioGAN's SAGAN writes them (and its BigGAN:
``model.hierarchical_z`` / ``shared_embedding`` build big_resnet's shared embedding, z chunks and CBN linears),
for speed comparisons only (``benchmarks/train_step.py``).

Same architecture, widths and parameter count as :mod:`sagan.models` (the same config builds both, the
ImageNet pyramid or a preset's ``model.g_widths`` / ``d_widths`` / ``d_down``, e.g. StudioGAN's CIFAR-10
networks), but computed the straightforward way:

- self-attention builds the explicit (B, N, N/4) map with ``torch.bmm`` + softmax and multiplies values
  by it with another ``bmm`` (ours: fused scaled-dot-product attention, no map);
- G's residual shortcut upsamples first, then applies the 1x1 conv on the 4x larger map; D's shortcut
  applies the 1x1 conv first, then average-pools (ours: both in the cheaper order, exact either way);
- spectral norm through the legacy ``torch.nn.utils.spectral_norm`` forward pre-hooks (ours: the
  parametrization API, with the power iteration kept in fp32);
- the training step calls D twice per D update, once on real and once on fake images (ours: once on
  the concatenation, which DDP + spectral norm need anyway); ``train.d_steps`` D updates per G update.

Written from the StudioGAN / BigGAN-PyTorch descriptions; no code is copied.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm

from sagan.config import Config, d_attn_blocks, g_block_resolutions, g_widths, model_d_layout
from sagan.objectives.losses import d_hinge_loss, g_hinge_loss


def _sn(module: nn.Module, eps: float) -> nn.Module:
    nn.init.orthogonal_(module.weight)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    return spectral_norm(module, n_power_iterations=1, eps=eps)


def conv(cin: int, cout: int, k: int, eps: float, bias: bool = True) -> nn.Module:
    return _sn(nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias), eps)


class RefSelfAttention(nn.Module):
    def __init__(self, c: int, eps: float):
        super().__init__()
        self.theta = conv(c, c // 8, 1, eps, bias=False)
        self.phi = conv(c, c // 8, 1, eps, bias=False)
        self.g = conv(c, c // 2, 1, eps, bias=False)
        self.o = conv(c // 2, c, 1, eps, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        theta = self.theta(x).view(B, C // 8, H * W)
        phi = F.max_pool2d(self.phi(x), 2).view(B, C // 8, H * W // 4)
        attn = torch.softmax(torch.bmm(theta.transpose(1, 2), phi), dim=-1)  # (B, N, N/4), no 1/sqrt(d)
        g = F.max_pool2d(self.g(x), 2).view(B, C // 2, H * W // 4)
        out = torch.bmm(g, attn.transpose(1, 2)).view(B, C // 2, H, W)
        return x + self.gamma * self.o(out)


class RefCBN(nn.Module):
    def __init__(self, c: int, num_classes: int, eps: float):
        super().__init__()
        self.bn = nn.BatchNorm2d(c, affine=False, eps=eps)
        self.gain, self.bias = nn.Embedding(num_classes, c), nn.Embedding(num_classes, c)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x, y):
        return self.bn(x) * self.gain(y)[:, :, None, None] + self.bias(y)[:, :, None, None]


class RefBigCBN(nn.Module):
    """BigGAN's CBN as StudioGAN's big_resnet writes it: gain 1 + SN-linear, bias SN-linear of the affine
    input [shared(y), z chunk], legacy SN hooks."""

    def __init__(self, c: int, cond_dim: int, bn_eps: float, eps: float):
        super().__init__()
        self.bn = nn.BatchNorm2d(c, affine=False, eps=bn_eps)
        self.gain = _sn(nn.Linear(cond_dim, c, bias=False), eps)
        self.bias = _sn(nn.Linear(cond_dim, c, bias=False), eps)

    def forward(self, x, affine):
        return self.bn(x) * (1 + self.gain(affine))[:, :, None, None] + self.bias(affine)[:, :, None, None]


class RefGBlock(nn.Module):
    def __init__(self, cin, cout, num_classes, bn_eps, eps, cond_dim: int = 0):
        super().__init__()
        if cond_dim:  # BigGAN (model.hierarchical_z / shared_embedding)
            self.bn1, self.bn2 = RefBigCBN(cin, cond_dim, bn_eps, eps), RefBigCBN(cout, cond_dim, bn_eps, eps)
        else:
            self.bn1, self.bn2 = RefCBN(cin, num_classes, bn_eps), RefCBN(cout, num_classes, bn_eps)
        self.conv1, self.conv2 = conv(cin, cout, 3, eps), conv(cout, cout, 3, eps)
        self.shortcut = conv(cin, cout, 1, eps)

    def forward(self, x, y):
        h = self.conv1(F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2, mode="nearest"))
        h = self.conv2(F.relu(self.bn2(h, y)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))  # upsample, then 1x1


class RefDBlock(nn.Module):
    def __init__(self, cin, cout, downsample, first, eps):
        super().__init__()
        self.first, self.downsample = first, downsample
        self.conv1, self.conv2 = conv(cin, cout, 3, eps), conv(cout, cout, 3, eps)
        self.shortcut = conv(cin, cout, 1, eps) if (cin != cout or downsample) else None

    def forward(self, x):
        h = self.conv2(F.relu(self.conv1(x if self.first else F.relu(x))))
        s = self.shortcut(x) if self.shortcut is not None else x  # 1x1, then pool
        if self.downsample:
            h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
        return h + s


class RefGenerator(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        m = cfg.model
        if m.attn_mode != "embedded_gaussian" or not m.attn_pool:
            raise ValueError("the reference covers the paper's networks: embedded Gaussian, pooled")
        gw = g_widths(m.resolution, m.g_ch, m.g_widths)
        self.z_dim, self.num_classes, self.c0 = m.z_dim, m.num_classes, gw[0]
        # BigGAN as StudioGAN's big_resnet: shared embedding, z chunks (hierarchical) split with torch.split
        self.hierarchical, cond_dim, z_in = m.hierarchical_z, 0, m.z_dim
        if m.hierarchical_z or m.shared_embedding:
            self.shared = nn.Embedding(m.num_classes, m.shared_dim)
            nn.init.orthogonal_(self.shared.weight)
            self.chunk = m.z_dim // len(gw) if m.hierarchical_z else 0
            cond_dim, z_in = m.shared_dim + self.chunk, (self.chunk or m.z_dim)
        self.linear = _sn(nn.Linear(z_in, 16 * self.c0), m.sn_eps)
        self.blocks = nn.ModuleList(RefGBlock(i, o, m.num_classes, m.bn_eps, m.sn_eps, cond_dim)
                                    for i, o in zip(gw[:-1], gw[1:]))
        self.attn = nn.ModuleDict({str(r): RefSelfAttention(o, m.sn_eps)
                                   for o, r in zip(gw[1:], g_block_resolutions(m.resolution)) if r in m.g_attn})
        self.resolutions = g_block_resolutions(m.resolution)
        self.out_bn = nn.BatchNorm2d(gw[-1], eps=m.bn_eps)
        self.out_conv = conv(gw[-1], 3, 3, m.sn_eps)

    def forward(self, z, y):
        conds = [y] * len(self.blocks)
        if hasattr(self, "shared"):
            if self.hierarchical:
                z, *chunks = torch.split(z, self.chunk, 1)
                conds = [torch.cat([self.shared(y), c], 1) for c in chunks]
            else:
                conds = [self.shared(y)] * len(self.blocks)
        h = self.linear(z).view(len(z), self.c0, 4, 4)
        for block, r, cond in zip(self.blocks, self.resolutions, conds):
            h = block(h, cond)
            if str(r) in self.attn:
                h = self.attn[str(r)](h)
        return torch.tanh(self.out_conv(F.relu(self.out_bn(h))))


class RefDiscriminator(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        m = cfg.model
        layout = model_d_layout(m)
        self.blocks = nn.ModuleList(RefDBlock(i, o, down, k == 0, m.sn_eps) for k, (i, o, down, _) in enumerate(layout))
        self.after = {k: str(r) for r, k in d_attn_blocks(layout).items() if r in m.d_attn}
        self.attn = nn.ModuleDict({r: RefSelfAttention(layout[k][1], m.sn_eps) for k, r in self.after.items()})
        c = layout[-1][1]
        self.linear = _sn(nn.Linear(c, 1), m.sn_eps)
        self.embed = _sn(nn.Embedding(m.num_classes, c), m.sn_eps)

    def forward(self, x, y):
        h = x
        for k, block in enumerate(self.blocks):
            h = block(h)
            if k in self.after:
                h = self.attn[self.after[k]](h)
        h = F.relu(h).sum(dim=(2, 3))
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(1)


def reference_step(G, D, opt_G, opt_D, real, labels, z_dim, num_classes, autocast, d_steps: int = 1) -> None:
    """``d_steps`` D steps (D on real, then D on fake) and one G step, StudioGAN style."""
    B, dev = len(real), real.device
    for _ in range(d_steps):
        opt_D.zero_grad(set_to_none=True)
        with autocast():
            y_fake = torch.randint(num_classes, (B,), device=dev)
            with torch.no_grad():
                fake = G(torch.randn(B, z_dim, device=dev), y_fake)
            loss = d_hinge_loss(D(real, labels), D(fake, y_fake))[0]
        loss.backward()
        opt_D.step()
    opt_G.zero_grad(set_to_none=True)
    D.requires_grad_(False)
    with autocast():
        y = torch.randint(num_classes, (B,), device=dev)
        loss = g_hinge_loss(D(G(torch.randn(B, z_dim, device=dev), y), y))
    loss.backward()
    D.requires_grad_(True)
    opt_G.step()
