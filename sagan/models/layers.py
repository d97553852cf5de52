"""Building blocks shared by both networks: spectrally normalised layers, conditional batch norm and batch
norm synchronised across processes."""

from __future__ import annotations

import contextlib
import contextvars
import warnings
from typing import Iterable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import _SpectralNorm, spectral_norm


class _SpectralNormFP32(_SpectralNorm):
    """torch's spectral-norm parametrization with autocast switched off.

    Under bf16/fp16 autocast the power iteration's matrix-vector products would run in low precision
    (and sigma with them); the weight itself is an fp32 parameter, so disabling autocast here costs
    nothing and the conv/linear that consumes the weight still runs under autocast.
    """

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=weight.device.type, enabled=False):
            return super().forward(weight)


def sn(module: nn.Module, eps: float = 1e-6, enabled: bool = True) -> nn.Module:
    """Spectral norm (Miyato et al. 2018) with one power iteration per training forward.

    Uses ``torch.nn.utils.parametrizations.spectral_norm``, so ``module.weight`` is the normalised
    weight, ``copy.deepcopy`` works (EMA copies) and eval mode skips the power iteration.
    ``enabled=False`` leaves the layer plain (``model.g_sn: false``, SAGAN section 5.1's baseline).
    """
    if not enabled:
        return module
    spectral_norm(module, n_power_iterations=1, eps=eps)
    module.parametrizations.weight[0].__class__ = _SpectralNormFP32
    return module


def spectral_norms(*modules: nn.Module) -> list[_SpectralNorm]:
    """The spectral-norm parametrizations inside ``modules``."""
    return [m for mod in modules for m in mod.modules() if isinstance(m, _SpectralNorm)]


@contextlib.contextmanager
def power_iteration_paused(norms: Iterable[_SpectralNorm]) -> Iterator[None]:
    """Training forwards that normalise with the current ``u``/``v`` without a power-iteration update: the
    micro-batches after the first of one optimizer update, so that an update runs one power iteration
    however its batch is split into processes x accumulation steps."""
    paused = [n for n in norms if n.training]
    for n in paused:
        n.training = False
    try:
        yield
    finally:
        for n in paused:
            n.training = True


def init_weight(w: torch.Tensor, scheme: str) -> None:
    if scheme in ("ortho", "orthogonal"):  # StudioGAN, BigGAN-PyTorch
        nn.init.orthogonal_(w)
    elif scheme == "xavier":
        nn.init.xavier_uniform_(w)
    else:
        nn.init.normal_(w, 0.0, 0.02)


def sn_conv(cin: int, cout: int, k: int = 3, *, bias: bool = True, init: str = "ortho", eps: float = 1e-6,
            use_sn: bool = True) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)
    init_weight(conv.weight, init)
    if bias:
        nn.init.zeros_(conv.bias)
    return sn(conv, eps, use_sn)


def sn_linear(cin: int, cout: int, *, bias: bool = True, init: str = "ortho", eps: float = 1e-6,
              use_sn: bool = True) -> nn.Linear:
    lin = nn.Linear(cin, cout, bias=bias)
    init_weight(lin.weight, init)
    if bias:
        nn.init.zeros_(lin.bias)
    return sn(lin, eps, use_sn)


def sn_embedding(num: int, dim: int, *, init: str = "ortho", eps: float = 1e-6) -> nn.Embedding:
    emb = nn.Embedding(num, dim)
    init_weight(emb.weight, init)
    return sn(emb, eps)


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm without affine parameters, then a class-dependent gain and bias (de Vries et al. 2017).

    ``out = BN(x) * gain(c) + bias(c)``. Two ways to get gain and bias:

    - ``num_classes``: one embedding table each, indexed by the label (the SAGAN release); gain starts
      at 1 and bias at 0, so at init the layer is plain batch norm. Not spectrally normalised, as in the
      official code.
    - ``cond_dim``: bias-free linear maps (spectrally normalised when G is) of a conditioning vector
      (BigGAN's shared embedding, + the block's z chunk under hierarchical latents), gain ``1 + W_g c``
      so that it is centred on 1 (StudioGAN ``src/utils/ops.py`` ``ConditionalBatchNorm2d``).
    """

    def __init__(self, channels: int, *, num_classes: int | None = None, cond_dim: int | None = None, eps: float = 1e-5,
                 sn_eps: float = 1e-6, use_sn: bool = True, init: str = "ortho"):
        super().__init__()
        if (num_classes is None) == (cond_dim is None):
            raise ValueError("give exactly one of num_classes or cond_dim")
        self.bn = nn.BatchNorm2d(channels, affine=False, eps=eps)
        self.embedded = num_classes is not None
        if self.embedded:
            self.gain = nn.Embedding(num_classes, channels)
            self.bias = nn.Embedding(num_classes, channels)
            nn.init.ones_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)
        else:
            # SN'd as in BigGAN-PyTorch; a zero init is impossible under SN (sigma would be 0)
            self.gain = sn_linear(cond_dim, channels, bias=False, init=init, eps=sn_eps, use_sn=use_sn)
            self.bias = sn_linear(cond_dim, channels, bias=False, init=init, eps=sn_eps, use_sn=use_sn)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if self.embedded:
            gain, bias = embed(self.gain, cond), embed(self.bias, cond)
        else:
            gain, bias = self.gain(cond) + 1, self.bias(cond)
        return torch.addcmul(bias[:, :, None, None], self.bn(x), gain[:, :, None, None])


class PlainBatchNorm2d(nn.BatchNorm2d):
    """Batch norm with its learned affine, taking (and ignoring) the class input of
    :class:`ConditionalBatchNorm2d`: the unconditional generator's (``model.num_classes: 0``)."""

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(x)


def embed(table: nn.Embedding, y: torch.Tensor) -> torch.Tensor:
    """Look up integer labels (B,), or mix rows with soft class weights (B, num_classes) for
    interpolating between classes (``sagan.sampling``)."""
    return y.to(table.weight.dtype) @ table.weight if y.is_floating_point() else table(y)


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


# --------------------------------------------------------------------------------------------------
# synchronised batch norm on any backend (train.sync_bn)

# torch 2.14 marks torch.distributed.nn's all_reduce deprecated for _functional_collectives.all_reduce,
# which has no autograd: the synchronised BN needs the differentiable one
warnings.filterwarnings("ignore", "torch.distributed.nn.functional.all_reduce is deprecated", FutureWarning)
_BN_GROUP: contextvars.ContextVar = contextvars.ContextVar("sagan_bn_group", default=None)


@contextlib.contextmanager
def batch_norm_synchronised(group) -> Iterator[None]:
    """Within this block, training forwards of :class:`SyncedBatchNorm2d` layers take their statistics over
    every process of ``group`` (a ``torch.distributed`` process group; None: each process its own). Only
    the training step opens it: sampling and evaluation (one process, eval mode) never wait for the others."""
    token = _BN_GROUP.set(group)
    try:
        yield
    finally:
        _BN_GROUP.reset(token)


class SyncedBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (same parameters, buffers and state dict) whose training statistics are those of
    the whole batch across processes inside :func:`batch_norm_synchronised`.

    The sums go through :class:`AllReduceSum`, a differentiable all-reduce that works on gloo as well as
    NCCL (torch's SyncBatchNorm has no CPU kernel): mean first, then the sum of squared
    deviations from it (two passes, no E[x^2] - E[x]^2 cancellation), in fp32. P processes x B/P images
    then normalise exactly like one process x B images; the running statistics get the same update (the
    unbiased variance of all images).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        group = _BN_GROUP.get()
        if group is None or not self.training:
            return super().forward(x)
        xf = x.float()
        dims = (0, 2, 3)
        local = torch.cat([xf.sum(dims), xf.new_full((1,), x.numel() // x.shape[1])])
        summed = AllReduceSum.apply(local, group)
        n = summed[-1]
        mean = summed[:-1] / n
        dev = xf - mean[None, :, None, None]
        var = AllReduceSum.apply(dev.square().sum(dims), group) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * n / (n - 1).clamp(min=1), m)
        out = dev * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return out.to(x.dtype)


class AllReduceSum(torch.autograd.Function):
    """``sum`` over the processes of ``group``, differentiable: every process's output is the same sum,
    so the gradient of the total loss with respect to each input is the sum of the outputs' gradients
    over the processes (an all-reduce in the backward pass as well)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        out = x.clone()
        torch.distributed.all_reduce(out, op=torch.distributed.ReduceOp.SUM, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        torch.distributed.all_reduce(grad, op=torch.distributed.ReduceOp.SUM, group=ctx.group)
        return grad, None


def synchronise_batch_norm(module: nn.Module) -> nn.Module:
    """Turn every plain ``nn.BatchNorm2d`` in ``module`` (CBN's and G's output BN) into a
    :class:`SyncedBatchNorm2d`, in place (no new state: checkpoints and the EMA copy stay as they are)."""
    for m in module.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = SyncedBatchNorm2d
    return module
