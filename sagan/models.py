"""The SAGAN generator and projection discriminator (Zhang et al. 2019; widths of the official release).

At 128px with ch = 64 (``configs/imagenet128.yaml``):

    G: z (128) -> SN-linear -> 4x4x1024
       up-blocks 1024->1024 (8px), 1024->512 (16), 512->256 (32), 256->128 (64), 128->64 (128)
       [self-attention after the blocks listed in model.g_attn]
       BN, ReLU, SN conv3x3 -> 3, tanh
    D: optimized block 3->64 (64px), down-blocks 64->128 (32), 128->256 (16), 256->512 (8),
       512->1024 (4), block 1024->1024 without downsampling
       [self-attention after the blocks listed in model.d_attn]
       ReLU, global sum pool, SN-linear -> 1, plus the projection <SN-embed(y), h> (Miyato & Koyama 2018)

Every conv, linear and embedding is spectrally normalised (SAGAN section 4: SN in both networks).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import SelfAttention
from .config import Config, d_block_resolutions, d_channel_mults, g_block_resolutions, g_channel_mults
from .layers import ConditionalBatchNorm2d, embed, sn_conv, sn_embedding, sn_linear, upsample2x


class GBlock(nn.Module):
    """CBN, ReLU, up x2 (nearest), conv3x3, CBN, ReLU, conv3x3; shortcut up x2 + conv1x1."""

    def __init__(self, cin: int, cout: int, cbn_kwargs: dict, init: str, sn_eps: float):
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(cin, **cbn_kwargs)
        self.conv1 = sn_conv(cin, cout, 3, init=init, eps=sn_eps)
        self.bn2 = ConditionalBatchNorm2d(cout, **cbn_kwargs)
        self.conv2 = sn_conv(cout, cout, 3, init=init, eps=sn_eps)
        self.shortcut = sn_conv(cin, cout, 1, init=init, eps=sn_eps)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(upsample2x(F.relu(self.bn1(x, cond))))
        h = self.conv2(F.relu(self.bn2(h, cond)))
        # conv1x1(up(x)) == up(conv1x1(x)) exactly (both act per pixel); the latter is 4x cheaper
        return h + upsample2x(self.shortcut(x))


class DBlock(nn.Module):
    """ReLU, conv3x3, ReLU, conv3x3, avgpool; shortcut conv1x1 + avgpool.

    The first ("optimized", Miyato et al. 2018) block takes RGB and has no leading ReLU; the shortcut is
    the identity when the block changes neither width nor size.
    """

    def __init__(self, cin: int, cout: int, downsample: bool, first: bool, init: str, sn_eps: float):
        super().__init__()
        self.first, self.downsample = first, downsample
        self.conv1 = sn_conv(cin, cout, 3, init=init, eps=sn_eps)
        self.conv2 = sn_conv(cout, cout, 3, init=init, eps=sn_eps)
        self.shortcut = sn_conv(cin, cout, 1, init=init, eps=sn_eps) if (cin != cout or downsample) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.downsample:
            # avgpool and conv1x1 are both linear and commute exactly; pooling first is 4x cheaper
            s = F.avg_pool2d(s, 2)
        if self.shortcut is not None:
            s = self.shortcut(s)
        return h + s


class Generator(nn.Module):
    def __init__(
        self,
        resolution: int = 128,
        num_classes: int = 1000,
        z_dim: int = 128,
        ch: int = 64,
        attn_resolutions: tuple[int, ...] = (64,),
        attn_mode: str = "embedded_gaussian",
        attn_pool: bool = True,
        hierarchical_z: bool = False,
        shared_dim: int = 128,
        bn_eps: float = 1e-5,
        sn_eps: float = 1e-6,
        init: str = "ortho",
    ):
        super().__init__()
        self.resolution, self.num_classes, self.z_dim = resolution, num_classes, z_dim
        self.hierarchical_z = hierarchical_z
        mults = g_channel_mults(resolution)
        resolutions = g_block_resolutions(resolution)
        if hierarchical_z:
            # BigGAN: z split into one chunk for the input linear and one per block; each block's CBN
            # is conditioned on [shared class embedding, its z chunk]
            self.z_chunk = z_dim // (len(mults) + 1)
            self.shared = nn.Embedding(num_classes, shared_dim)
            nn.init.normal_(self.shared.weight, 0, 0.02)
            cbn_kwargs = dict(cond_dim=shared_dim + self.z_chunk, eps=bn_eps, sn_eps=sn_eps)
            z_in = self.z_chunk
        else:
            cbn_kwargs = dict(num_classes=num_classes, eps=bn_eps, sn_eps=sn_eps)
            z_in = z_dim
        self.c0 = mults[0][0] * ch
        self.linear = sn_linear(z_in, 4 * 4 * self.c0, init=init, eps=sn_eps)
        self.blocks = nn.ModuleList(GBlock(i * ch, o * ch, cbn_kwargs, init, sn_eps) for i, o in mults)
        self.attn = nn.ModuleDict(
            {str(r): SelfAttention(o * ch, attn_mode, attn_pool, init=init, sn_eps=sn_eps) for (_, o), r in zip(mults, resolutions) if r in attn_resolutions}
        )
        self.block_resolutions = resolutions
        self.out_bn = nn.BatchNorm2d(mults[-1][1] * ch, eps=bn_eps)
        self.out_conv = sn_conv(mults[-1][1] * ch, 3, 3, init=init, eps=sn_eps)

    @classmethod
    def from_config(cls, cfg: Config) -> "Generator":
        m = cfg.model
        return cls(m.resolution, m.num_classes, m.z_dim, m.g_ch, m.g_attn, m.attn_mode, m.attn_pool, m.hierarchical_z, m.shared_dim, m.bn_eps, m.sn_eps, m.init)

    def forward(self, z: torch.Tensor, y: torch.Tensor, return_attn: bool = False):
        """z (B, z_dim), labels y (B,) -> images (B, 3, R, R) in [-1, 1].

        ``y`` may also be soft class weights (B, num_classes), e.g. to interpolate between classes.
        With ``return_attn`` also a dict {resolution: attention weights (B, H, W, Hk, Wk)}.
        """
        if self.hierarchical_z:
            z0, *zs = z.split(self.z_chunk, dim=1)
            shared = embed(self.shared, y)
            conds = [torch.cat([shared, zc], 1) for zc in zs]
        else:
            z0, conds = z, [y] * len(self.blocks)
        h = self.linear(z0).view(z.shape[0], self.c0, 4, 4)
        maps = {}
        for block, cond, r in zip(self.blocks, conds, self.block_resolutions):
            h = block(h, cond)
            attn = self.attn[str(r)] if str(r) in self.attn else None
            if attn is not None:
                if return_attn:
                    h, maps[r] = attn(h, return_attn=True)
                else:
                    h = attn(h)
        img = torch.tanh(self.out_conv(F.relu(self.out_bn(h))))
        return (img, maps) if return_attn else img


class Discriminator(nn.Module):
    def __init__(
        self,
        resolution: int = 128,
        num_classes: int = 1000,
        ch: int = 64,
        attn_resolutions: tuple[int, ...] = (64,),
        attn_mode: str = "embedded_gaussian",
        attn_pool: bool = True,
        sn_eps: float = 1e-6,
        init: str = "ortho",
    ):
        super().__init__()
        self.resolution, self.num_classes = resolution, num_classes
        mults = d_channel_mults(resolution)
        resolutions = d_block_resolutions(resolution)
        self.blocks = nn.ModuleList(
            DBlock(3 if k == 0 else i * ch, o * ch, down, k == 0, init, sn_eps) for k, (i, o, down) in enumerate(mults)
        )
        # the last block keeps 4px and is never followed by attention
        self.attn = nn.ModuleDict(
            {str(r): SelfAttention(o * ch, attn_mode, attn_pool, init=init, sn_eps=sn_eps) for (_, o, _), r in zip(mults[:-1], resolutions[:-1]) if r in attn_resolutions}
        )
        self.block_resolutions = resolutions
        c_out = mults[-1][1] * ch
        self.linear = sn_linear(c_out, 1, init=init, eps=sn_eps)
        self.embed = sn_embedding(num_classes, c_out, init=init, eps=sn_eps)

    @classmethod
    def from_config(cls, cfg: Config) -> "Discriminator":
        m = cfg.model
        return cls(m.resolution, m.num_classes, m.d_ch, m.d_attn, m.attn_mode, m.attn_pool, m.sn_eps, m.init)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, R, R), labels (B,) -> logits (B,)."""
        h = x
        for k, block in enumerate(self.blocks):
            h = block(h)
            r = str(self.block_resolutions[k])
            if k < len(self.blocks) - 1 and r in self.attn:
                h = self.attn[r](h)
        h = F.relu(h).sum(dim=(2, 3))  # global sum pooling (official release)
        # projection discriminator: psi(h) + <embed(y), h>
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
