"""A small, independent implementation of PyTorch-StudioGAN's SAGAN forward pass, for the conversion tests.

Written from the facts of StudioGAN's ``src/models/resnet.py`` and ``src/utils/ops.py`` (module and
tensor names, block order, formulas), not from sagan's code: torch's legacy hook-based
``torch.nn.utils.spectral_norm`` (eps 1e-6) on every conv/linear/embedding, conditional BN as SN
bias-free linear layers on a one-hot label with ``gain = 1 + W y`` (v0.4; ``cbn="embedding"`` gives the
SN-embedding CBN of v0.3 and before), BN eps 1e-4, self-attention as its own entry of the block list
with a ``sigma`` of shape [1], and ``nn.ReLU(inplace=True)`` everywhere, which in D's blocks after the
first overwrites the block input that the shortcut reads.

``save_run`` writes a G/D(/G_ema) set in StudioGAN's file layout (``model=G-best-weights-step=N.pth`` ...)
holding the dict StudioGAN saves (``state_dict``, ``optimizer``, ``seed``, ``run_name``, ``step``, ...).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

EPS_BN, EPS_SN = 1e-4, 1e-6

# channel multipliers (x ch) of StudioGAN's 128px resnet SAGAN, and the same pattern cut to 32px
G_DIMS = {128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1]), 32: ([4, 4, 2], [4, 2, 1])}
D_DIMS = {128: ([0, 1, 2, 4, 8, 16], [1, 2, 4, 8, 16, 16], [True] * 5 + [False]),
          32: ([0, 1, 2, 4], [1, 2, 4, 4], [True] * 3 + [False])}  # in 0 = RGB
# StudioGAN's own tables at 32 and 64px (resnet.py's g_in/out_dims_collection, d_in/out_dims_collection, d_down)
STUDIOGAN_G_DIMS = {32: ([4, 4, 4], [4, 4, 4]), 64: ([16, 8, 4, 2], [8, 4, 2, 1]), 128: G_DIMS[128]}
STUDIOGAN_D_DIMS = {32: ([0, 2, 2, 2], [2, 2, 2, 2], [True, True, False, False]),
                    64: ([0, 1, 2, 4, 8], [1, 2, 4, 8, 16], [True] * 4 + [False]), 128: D_DIMS[128]}


def sn(module: nn.Module) -> nn.Module:
    return nn.utils.spectral_norm(module, eps=EPS_SN)


def conv(cin: int, cout: int, k: int, bias: bool = True, use_sn: bool = True) -> nn.Module:
    layer = nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)
    return sn(layer) if use_sn else layer


class PlainBN(nn.BatchNorm2d):
    """g_cond_mtd "W/O": ops.batchnorm_2d with its affine, the label unused."""

    def forward(self, x, y=None):
        return super().forward(x)


class CondBN(nn.Module):
    """``cbn``: "onehot" (resnet.py v0.4), "embedding" (v0.3) or "affine" (big_resnet.py: linear maps of the
    affine input [shared embedding, z chunk], ``num_classes`` then being that input's size)."""

    def __init__(self, num_classes: int, channels: int, cbn: str, use_sn: bool = True):
        super().__init__()
        self.num_classes, self.cbn = num_classes, cbn
        self.bn = nn.BatchNorm2d(channels, eps=EPS_BN, momentum=0.1, affine=False)
        if cbn in ("onehot", "affine"):  # MODULES.g_linear: SN linear, or plain without apply_g_sn
            maybe_sn = sn if use_sn else (lambda m: m)
            self.gain = maybe_sn(nn.Linear(num_classes, channels, bias=False))
            self.bias = maybe_sn(nn.Linear(num_classes, channels, bias=False))
        else:
            self.embed0 = sn(nn.Embedding(num_classes, channels))
            self.embed1 = sn(nn.Embedding(num_classes, channels))

    def forward(self, x, y):
        if self.cbn in ("onehot", "affine"):
            inp = F.one_hot(y, self.num_classes).float() if self.cbn == "onehot" else y
            gain, bias = 1 + self.gain(inp), self.bias(inp)
        else:
            gain, bias = 1 + self.embed0(y), self.embed1(y)
        return self.bn(x) * gain[:, :, None, None] + bias[:, :, None, None]


class Attention(nn.Module):
    def __init__(self, ch: int, use_sn: bool = True):
        super().__init__()
        self.conv1x1_theta = conv(ch, ch // 8, 1, bias=False, use_sn=use_sn)
        self.conv1x1_phi = conv(ch, ch // 8, 1, bias=False, use_sn=use_sn)
        self.conv1x1_g = conv(ch, ch // 2, 1, bias=False, use_sn=use_sn)
        self.conv1x1_attn = conv(ch // 2, ch, 1, bias=False, use_sn=use_sn)
        self.sigma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        b, ch, h, w = x.shape
        theta = self.conv1x1_theta(x).view(b, ch // 8, h * w)
        phi = F.max_pool2d(self.conv1x1_phi(x), 2).view(b, ch // 8, h * w // 4)
        attn = torch.softmax(torch.bmm(theta.permute(0, 2, 1), phi), dim=-1)  # (b, queries, keys)
        g = F.max_pool2d(self.conv1x1_g(x), 2).view(b, ch // 2, h * w // 4)
        out = torch.bmm(g, attn.permute(0, 2, 1)).view(b, ch // 2, h, w)
        return x + self.sigma * self.conv1x1_attn(out)


class GenBlock(nn.Module):
    def __init__(self, cin: int, cout: int, num_classes: int, cbn: str, use_sn: bool = True):
        super().__init__()
        norm = (lambda c: PlainBN(c, eps=EPS_BN)) if num_classes == 0 else (lambda c: CondBN(num_classes, c, cbn, use_sn))
        self.bn1, self.bn2 = norm(cin), norm(cout)
        self.conv2d0, self.conv2d1, self.conv2d2 = (conv(cin, cout, 1, use_sn=use_sn), conv(cin, cout, 3, use_sn=use_sn),
                                                    conv(cout, cout, 3, use_sn=use_sn))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x, y):
        x0 = x
        x = self.conv2d1(F.interpolate(self.act(self.bn1(x, y)), scale_factor=2, mode="nearest"))
        x = self.conv2d2(self.act(self.bn2(x, y)))
        return x + self.conv2d0(F.interpolate(x0, scale_factor=2, mode="nearest"))


class RefGenerator(nn.Module):
    """``num_classes`` 0: g_cond_mtd "W/O" (plain BN); ``use_sn`` False: apply_g_sn False (SNGAN);
    ``dims`` (in, out) multipliers, default ``G_DIMS[resolution]`` (``STUDIOGAN_G_DIMS`` for its own tables)."""

    def __init__(self, resolution: int, num_classes: int, z_dim: int, ch: int, attn_after: tuple[int, ...],
                 cbn: str = "onehot", dims=None, use_sn: bool = True):
        super().__init__()
        ins, outs = ([m * ch for m in d] for d in (dims or G_DIMS[resolution]))
        self.c0 = ins[0]
        self.linear0 = nn.Linear(z_dim, ins[0] * 16)
        self.linear0 = sn(self.linear0) if use_sn else self.linear0
        entries = []
        for i, (a, b) in enumerate(zip(ins, outs)):
            entries.append([GenBlock(a, b, num_classes, cbn, use_sn)])
            if i + 1 in attn_after:  # StudioGAN's attn_g_loc counts blocks from 1
                entries.append([Attention(b, use_sn)])
        self.blocks = nn.ModuleList(nn.ModuleList(e) for e in entries)
        self.bn4 = nn.BatchNorm2d(outs[-1], eps=EPS_BN)
        self.act = nn.ReLU(inplace=True)
        self.conv2d5 = conv(outs[-1], 3, 3, use_sn=use_sn)

    def forward(self, z, y):
        h = self.linear0(z).view(-1, self.c0, 4, 4)
        for (block,) in self.blocks:
            h = block(h) if isinstance(block, Attention) else block(h, y)
        return torch.tanh(self.conv2d5(self.act(self.bn4(h))))


class RefBigGenerator(RefGenerator):
    """StudioGAN's ``big_resnet`` G (``src/models/big_resnet.py``): ``shared`` (an ``ops.embedding``, no SN,
    classes x g_shared_dim), z split into (blocks + 1) chunks of ``z_dim // (blocks + 1)`` (an assert that
    it divides), ``linear0`` of the first chunk, every block's two CBNs reading ``affine = cat(shared(y),
    chunk)`` through SN bias-free linears (gain 1 + W affine); blocks, attention entries, ``bn4``, ``conv2d5``
    and names as in resnet.py. Its 32 and 128px width tables are resnet.py's (``STUDIOGAN_G_DIMS``)."""

    def __init__(self, resolution: int, num_classes: int, z_dim: int, ch: int, attn_after: tuple[int, ...],
                 shared_dim: int = 128, use_sn: bool = True):
        blocks = len(STUDIOGAN_G_DIMS[resolution][0])
        chunk = z_dim // (blocks + 1)
        assert chunk * (blocks + 1) == z_dim, "z_dim should be divided by the number of blocks"
        # the CBNs' input is the affine vector (shared_dim + chunk), linear0's the first chunk
        super().__init__(resolution, shared_dim + chunk, chunk, ch, attn_after, cbn="affine",
                         dims=STUDIOGAN_G_DIMS[resolution], use_sn=use_sn)
        self.chunk = chunk
        self.shared = nn.Embedding(num_classes, shared_dim)

    def forward(self, z, y):
        zs = torch.split(z, self.chunk, 1)
        shared = self.shared(y)
        affines = [torch.cat([shared, item], 1) for item in zs[1:]]
        h = self.linear0(zs[0]).view(-1, self.c0, 4, 4)
        counter = 0
        for (block,) in self.blocks:
            if isinstance(block, Attention):
                h = block(h)
            else:
                h = block(h, affines[counter])
                counter += 1
        return torch.tanh(self.conv2d5(self.act(self.bn4(h))))


class DiscOptBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv2d0, self.conv2d1, self.conv2d2 = conv(cin, cout, 1), conv(cin, cout, 3), conv(cout, cout, 3)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        h = F.avg_pool2d(self.conv2d2(self.act(self.conv2d1(x))), 2)
        return h + self.conv2d0(F.avg_pool2d(x, 2))


class DiscBlock(nn.Module):
    def __init__(self, cin: int, cout: int, downsample: bool):
        super().__init__()
        self.downsample, self.has_shortcut = downsample, downsample or cin != cout
        if self.has_shortcut:
            self.conv2d0 = conv(cin, cout, 1)
        self.conv2d1, self.conv2d2 = conv(cin, cout, 3), conv(cout, cout, 3)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        x0 = x
        x = self.act(x)  # in place: x0 is now relu(input) too (StudioGAN's behaviour, kept on purpose)
        x = self.conv2d2(self.act(self.conv2d1(x)))
        if self.downsample:
            x = F.avg_pool2d(x, 2)
        if self.has_shortcut:
            x0 = self.conv2d0(x0)
            if self.downsample:
                x0 = F.avg_pool2d(x0, 2)
        return x + x0


class RefDiscriminator(nn.Module):
    """``cond``: d_cond_mtd "PD" (projection), "AC" (``linear2``, bias-free, class logits) or "W/O";
    ``dims`` (in, out, down), default ``D_DIMS[resolution]``."""

    def __init__(self, resolution: int, num_classes: int, ch: int, attn_after: tuple[int, ...], dims=None,
                 cond: str = "PD"):
        super().__init__()
        ins, outs, down = dims or D_DIMS[resolution]
        self.cond = cond
        ins = [3] + [m * ch for m in ins[1:]]
        outs = [m * ch for m in outs]
        entries = []
        for i, (a, b) in enumerate(zip(ins, outs)):
            entries.append([DiscOptBlock(a, b) if i == 0 else DiscBlock(a, b, down[i])])
            if i + 1 in attn_after:  # attn_d_loc, from 1
                entries.append([Attention(b)])
        self.blocks = nn.ModuleList(nn.ModuleList(e) for e in entries)
        self.act = nn.ReLU(inplace=True)
        self.linear1 = sn(nn.Linear(outs[-1], 1))
        if cond == "PD":
            self.embedding = sn(nn.Embedding(num_classes, outs[-1]))
        elif cond == "AC":
            self.linear2 = sn(nn.Linear(outs[-1], num_classes, bias=False))

    def forward(self, x, y, return_classes: bool = False):
        h = x.clone()  # the blocks' in-place ReLUs must not touch the caller's images
        for (block,) in self.blocks:
            h = block(h)
        h = self.act(h).sum(dim=(2, 3))
        adv = torch.squeeze(self.linear1(h), 1)
        if self.cond == "PD":
            adv = adv + (self.embedding(y) * h).sum(1)
        return (adv, self.linear2(h) if self.cond == "AC" else None) if return_classes else adv


@torch.no_grad()
def make_trained_like(G: RefGenerator, D: RefDiscriminator, num_classes: int, z_dim: int, seed: int = 0) -> None:
    """Move the networks off their init so every part of the mapping matters: class-dependent CBN
    weights, non-zero attention sigma, BN running statistics and SN vectors from a few train-mode passes."""
    gen = torch.Generator().manual_seed(seed)
    for net in (G, D):
        for m in net.modules():
            if isinstance(m, Attention):
                m.sigma.fill_(float(torch.empty(1).uniform_(0.5, 1.5, generator=gen)))
            if isinstance(m, CondBN):
                for lin in (getattr(m, "gain", None), getattr(m, "bias", None), getattr(m, "embed0", None),
                            getattr(m, "embed1", None)):
                    if lin is not None:
                        getattr(lin, "weight_orig", lin.weight).normal_(0, 1, generator=gen)
    G.train(), D.train()
    for _ in range(3):
        z = torch.randn(8, z_dim, generator=gen)
        y = torch.randint(0, max(num_classes, 1), (8,), generator=gen)
        D(G(z, y), y)
    G.eval(), D.eval()


def save_run(folder: Path, G: nn.Module, D: nn.Module, step: int, which: str = "best", G_ema: nn.Module | None = None,
             extra_D: dict | None = None) -> Path:
    """StudioGAN's file set for one save (``src/utils/ckpt.py`` names, the dict its trainer writes)."""
    folder.mkdir(parents=True, exist_ok=True)
    common = {"seed": 7, "run_name": "ImageNet-SAGAN-256-train-2021_01_01_00_00_00", "step": step, "ada_p": None,
              "best_step": step}
    for name, net in (("G", G), ("G_ema", G_ema), ("D", D)):
        if net is None:
            continue
        entry = {**common, "state_dict": net.state_dict(),
                 "optimizer": torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.0, 0.999)).state_dict()}
        if name == "D":
            entry.update(best_fid=np.float64(34.73), best_fid_checkpoint_path=str(folder), **(extra_D or {}))
        torch.save(entry, folder / f"model={name}-{which}-weights-step={step}.pth")
    return folder
