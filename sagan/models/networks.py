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

Every conv, linear and embedding is spectrally normalised (SAGAN section 4: SN in both networks);
``model.g_sn: false`` leaves G plain (the "SN on D only" baseline of section 5.1). At the resolutions of
``model.g_attn`` / ``d_attn`` sits a self-attention block, or with ``g_block_type`` / ``d_block_type:
residual`` a plain residual block of the same width (Table 1's control for extra capacity).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import SelfAttention
from .hub import from_pretrained as hub_from_pretrained
from ..config import Config, ModelConfig, d_attn_blocks, g_block_resolutions, g_widths, model_d_layout
from .layers import (ConditionalBatchNorm2d, PlainBatchNorm2d, embed, init_weight, sn_conv, sn_embedding, sn_linear,
                     upsample2x)


class GBlock(nn.Module):
    """CBN, ReLU, up x2 (nearest), conv3x3, CBN, ReLU, conv3x3; shortcut up x2 + conv1x1.

    Unconditional (``cbn_kwargs`` None): plain batch norms with a learned affine, no class input."""

    def __init__(self, cin: int, cout: int, cbn_kwargs: dict | None, conv_kwargs: dict, bn_eps: float = 1e-5):
        super().__init__()
        norm = (lambda c: PlainBatchNorm2d(c, eps=bn_eps)) if cbn_kwargs is None else \
            (lambda c: ConditionalBatchNorm2d(c, **cbn_kwargs))
        self.bn1 = norm(cin)
        self.conv1 = sn_conv(cin, cout, 3, **conv_kwargs)
        self.bn2 = norm(cout)
        self.conv2 = sn_conv(cout, cout, 3, **conv_kwargs)
        self.shortcut = sn_conv(cin, cout, 1, **conv_kwargs)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(upsample2x(F.relu(self.bn1(x, cond))))
        h = self.conv2(F.relu(self.bn2(h, cond)))
        # conv1x1(up(x)) == up(conv1x1(x)) exactly (both act per pixel); the latter is 4x cheaper
        return h + upsample2x(self.shortcut(x))


class DBlock(nn.Module):
    """ReLU, conv3x3, ReLU, conv3x3, avgpool; shortcut conv1x1 + avgpool.

    The first ("optimized", Miyato et al. 2018) block takes RGB and has no leading ReLU; the shortcut is
    the identity when the block changes neither width nor size. ``shortcut_relu`` feeds the shortcut
    relu(x) instead of x, as StudioGAN's in-place ReLU does in every block after the first
    (``model.d_shortcut_relu``, for its released weights; not the paper's block).
    """

    def __init__(self, cin: int, cout: int, downsample: bool, first: bool, init: str, sn_eps: float,
                 shortcut_relu: bool = False):
        super().__init__()
        self.first, self.downsample = first, downsample
        self.shortcut_relu = shortcut_relu and not first
        self.conv1 = sn_conv(cin, cout, 3, init=init, eps=sn_eps)
        self.conv2 = sn_conv(cout, cout, 3, init=init, eps=sn_eps)
        self.shortcut = sn_conv(cin, cout, 1, init=init, eps=sn_eps) if (cin != cout or downsample) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        s = h if self.shortcut_relu else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        if self.downsample:
            # avgpool and conv1x1 are both linear and commute exactly; pooling first is 4x cheaper
            s = F.avg_pool2d(s, 2)
        if self.shortcut is not None:
            s = self.shortcut(s)
        return h + s


class ResidualBlock(nn.Module):
    """x + conv3x3(relu(conv3x3(relu(x)))) at constant width and size: the block SAGAN's Table 1 puts where
    self-attention would be, to show that attention's gain is not extra capacity. No gamma: it starts as
    a working block, not as the identity."""

    def __init__(self, channels: int, conv_kwargs: dict):
        super().__init__()
        self.conv1 = sn_conv(channels, channels, 3, **conv_kwargs)
        self.conv2 = sn_conv(channels, channels, 3, **conv_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


def stage_blocks(block_type: str, widths: dict[int, int], attn_mode: str, attn_pool: bool,
                 conv_kwargs: dict) -> tuple[nn.ModuleDict, nn.ModuleDict]:
    """``(attn, residual)`` module dicts keyed by resolution: one of them holds a block per entry of
    ``widths`` ({resolution: channels}), the other is empty (so a default network's state dict keeps
    its ``attn.<res>.*`` keys)."""
    attn, residual = nn.ModuleDict(), nn.ModuleDict()
    for r, c in widths.items():
        if block_type == "attention":
            attn[str(r)] = SelfAttention(c, attn_mode, attn_pool, init=conv_kwargs["init"], sn_eps=conv_kwargs["eps"],
                                         use_sn=conv_kwargs.get("use_sn", True))
        else:
            residual[str(r)] = ResidualBlock(c, conv_kwargs)
    return attn, residual


def model_section(model: ModelConfig | Config | None) -> ModelConfig:
    if model is None:
        return ModelConfig()
    m = model.model if isinstance(model, Config) else model
    if not isinstance(m, ModelConfig):
        raise TypeError(f"expected a ModelConfig or a Config, got {type(model).__name__}; "
                        "build networks with Generator.from_config(load_config(...))")
    return m


class Generator(nn.Module):
    """The SAGAN generator of a model config (the ``model`` section, or a whole config; ``None``: the
    paper's ImageNet 128px network)."""

    def __init__(self, model: ModelConfig | Config | None = None):
        m = model_section(model)
        resolution, num_classes, z_dim, bn_eps, sn_eps = m.resolution, m.num_classes, m.z_dim, m.bn_eps, m.sn_eps
        hierarchical_z, shared_dim, use_sn = m.hierarchical_z, m.shared_dim, m.g_sn
        super().__init__()
        self.resolution, self.num_classes, self.z_dim = resolution, num_classes, z_dim
        self.hierarchical_z = hierarchical_z
        self.shared_embedding = hierarchical_z or m.shared_embedding
        gw = g_widths(resolution, m.g_ch, m.g_widths)  # 4px, then after each block (model.g_widths or the pyramid)
        resolutions = g_block_resolutions(resolution)
        z_in = z_dim
        if self.shared_embedding:
            # BigGAN (Brock et al. 2019; StudioGAN big_resnet): one class embedding G.shared (no SN) for all
            # blocks; each CBN's gain 1 + W_g c and bias W_b c are linear maps (SN when G has SN) of c = the
            # embedding, concatenated with the block's z chunk under hierarchical_z, where z splits into
            # (blocks + 1) equal chunks, the first into the input linear (128px: z 120 = 6 x 20)
            self.shared = nn.Embedding(num_classes, shared_dim)
            init_weight(self.shared.weight, m.init)  # G_init, as BigGAN-PyTorch's and StudioGAN's init_weights
            cond_dim = shared_dim
            if hierarchical_z:
                self.z_chunk = z_dim // len(gw)
                z_in, cond_dim = self.z_chunk, shared_dim + self.z_chunk
            cbn_kwargs = dict(cond_dim=cond_dim, eps=bn_eps, sn_eps=sn_eps, use_sn=use_sn, init=m.init)
        else:
            cbn_kwargs = dict(num_classes=num_classes, eps=bn_eps, sn_eps=sn_eps) if num_classes > 0 else None
        conv_kwargs = dict(init=m.init, eps=sn_eps, use_sn=use_sn)
        self.c0 = gw[0]
        self.linear = sn_linear(z_in, 4 * 4 * self.c0, **conv_kwargs)
        self.blocks = nn.ModuleList(GBlock(i, o, cbn_kwargs, conv_kwargs, bn_eps) for i, o in zip(gw[:-1], gw[1:]))
        stage = {r: o for o, r in zip(gw[1:], resolutions) if r in m.g_attn}
        self.attn, self.residual = stage_blocks(m.g_block_type, stage, m.attn_mode, m.attn_pool, conv_kwargs)
        self.block_resolutions = resolutions
        self.out_bn = nn.BatchNorm2d(gw[-1], eps=bn_eps)
        self.out_conv = sn_conv(gw[-1], 3, 3, **conv_kwargs)

    @classmethod
    def from_config(cls, cfg: Config) -> "Generator":
        """The generator of a whole config (its ``model`` section)."""
        return cls(cfg.model)

    @classmethod
    def from_pretrained(cls, path_or_repo_id, **kwargs) -> "Generator":
        """A generator written by ``sagan-export --format hf``: a local folder or a Hugging Face Hub repo id
        (needs the ``[hub]`` extra; the result also has ``push_to_hub``). See :mod:`sagan.models.hub`."""
        return hub_from_pretrained(path_or_repo_id, cls, **kwargs)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None, return_attn: bool = False):
        """z (B, z_dim), labels y (B,) -> images (B, 3, R, R) in [-1, 1].

        ``y`` may also be soft class weights (B, num_classes), e.g. to interpolate between classes; an
        unconditional G (``num_classes`` 0) ignores it (None is fine).
        With ``return_attn`` also a dict {resolution: attention weights (B, H, W, Hk, Wk)}.
        """
        if self.hierarchical_z:
            z0, *zs = z.split(self.z_chunk, dim=1)
            shared = embed(self.shared, y)
            conds = [torch.cat([shared, zc], 1) for zc in zs]
        elif self.shared_embedding:
            z0, conds = z, [embed(self.shared, y)] * len(self.blocks)
        else:
            z0, conds = z, [y] * len(self.blocks)
        h = self.linear(z0).view(z.shape[0], self.c0, 4, 4)
        maps = {}
        for block, cond, r in zip(self.blocks, conds, self.block_resolutions):
            h = block(h, cond)
            if str(r) in self.attn:
                if return_attn:
                    h, maps[r] = self.attn[str(r)](h, return_attn=True)
                else:
                    h = self.attn[str(r)](h)
            elif str(r) in self.residual:
                h = self.residual[str(r)](h)
        img = torch.tanh(self.out_conv(F.relu(self.out_bn(h))))
        return (img, maps) if return_attn else img


class Discriminator(nn.Module):
    """The SAGAN projection discriminator of a model config (the ``model`` section, or a whole config;
    ``None``: the paper's)."""

    def __init__(self, model: ModelConfig | Config | None = None):
        m = model_section(model)
        resolution, num_classes, init, sn_eps = m.resolution, m.num_classes, m.init, m.sn_eps
        super().__init__()
        self.resolution, self.num_classes = resolution, num_classes
        layout = model_d_layout(m)  # model.d_widths / d_down, or the pyramid
        self.blocks = nn.ModuleList(
            DBlock(cin=i, cout=o, downsample=dn, first=k == 0, init=init, sn_eps=sn_eps,
                   shortcut_relu=m.d_shortcut_relu) for k, (i, o, dn, _) in enumerate(layout)
        )
        # attention at R px follows the first block reaching R (never the last block)
        self.stage_after = {k: str(px) for px, k in d_attn_blocks(layout).items() if px in m.d_attn}
        stage = {int(r): layout[k][1] for k, r in self.stage_after.items()}
        self.attn, self.residual = stage_blocks(m.d_block_type, stage, m.attn_mode, m.attn_pool,
                                                dict(init=init, eps=sn_eps))
        self.block_resolutions = [px for *_, px in layout]
        c_out = layout[-1][1]
        self.linear = sn_linear(c_out, 1, init=init, eps=sn_eps)
        # the class term: projection <embed(y), h>, an auxiliary classifier (AC-GAN), or none (unconditional)
        self.cond = m.d_cond if num_classes > 0 else None
        if self.cond == "projection":
            self.embed = sn_embedding(num_classes, c_out, init=init, eps=sn_eps)
        elif self.cond == "ac":
            self.classifier = sn_linear(c_out, num_classes, bias=False, init=init, eps=sn_eps)

    @classmethod
    def from_config(cls, cfg: Config) -> "Discriminator":
        """The discriminator of a whole config (its ``model`` section)."""
        return cls(cfg.model)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, return_classes: bool = False):
        """Images (B, 3, R, R), labels (B,) -> logits (B,).

        With ``return_classes`` also the auxiliary classifier's class logits (B, num_classes) of an AC-GAN
        D (None for the other heads). An unconditional D ignores ``y``."""
        h = x
        for k, block in enumerate(self.blocks):
            h = block(h)
            r = self.stage_after.get(k)
            if r in self.attn:
                h = self.attn[r](h)
            elif r in self.residual:
                h = self.residual[r](h)
        h = F.relu(h).sum(dim=(2, 3))  # global sum pooling (official release)
        out = self.linear(h).squeeze(1)
        if self.cond == "projection":  # projection discriminator: psi(h) + <embed(y), h>
            out = out + (self.embed(y) * h).sum(1)
        if not return_classes:
            return out
        return out, (self.classifier(h) if self.cond == "ac" else None)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
