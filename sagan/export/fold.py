"""A checkpoint's generator as plain layers: what every export format is built from.

Spectral norm (Miyato et al. 2018) is a parametrization: ``conv.weight`` is recomputed as W / sigma on
each forward, and in train mode the power iteration also updates the stored vectors u, v. Tracing and
ONNX export trip over it (PyTorch issues 49643, 27723). In eval mode sigma = u . (W v) from the
checkpoint's stored u and v, with no iteration, so the normalised weight is a constant: folding writes
exactly that tensor (the one eval mode computes, bit for bit) into a plain ``weight``, and the generator
is rebuilt without spectral norm (``model.g_sn: false`` builds the same layers unparametrized).

Batch norm stays in eval mode with the statistics in its buffers: the checkpoint's running statistics,
or standing statistics accumulated before folding (``sagan.sampling.bn_stats.prepare_generator``). Traced, an
eval-mode batch norm is a constant affine map per channel (a later ``.train()`` does not change it).

For the traced formats (ONNX, TorchScript) self-attention runs as plain matrix products and a softmax
(:class:`PlainSelfAttention`), not through the fused ``scaled_dot_product_attention`` kernel, so any
runtime that has MatMul and Softmax runs it.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoint import load_state
from ..config import Config
from ..models.attention import SelfAttention
from ..models.hf_folder import plain_config  # noqa: F401  (also a name of this module)
from ..models.networks import Generator

PARAMETRIZED = ".parametrizations."


@torch.no_grad()
def folded_state(G: nn.Module) -> dict[str, torch.Tensor]:
    """G's state dict with every spectrally normalised weight replaced by the weight eval mode uses
    (W / sigma from the stored u, v) under the plain name ``<layer>.weight``; u, v and W are dropped."""
    was_training = G.training
    G.eval()  # eval mode: no power iteration, sigma from the stored vectors
    modules = dict(G.named_modules())
    out: dict[str, torch.Tensor] = {}
    try:
        for key, value in G.state_dict().items():
            if PARAMETRIZED not in key:
                out[key] = value.detach().clone()
                continue
            layer, rest = key.split(PARAMETRIZED, 1)
            name = rest.split(".", 1)[0]
            folded = f"{layer}.{name}" if layer else name
            if folded not in out:
                out[folded] = getattr(modules[layer], name).detach().clone()
    finally:
        G.train(was_training)
    return out


def plain_generator(G: nn.Module, cfg: Config, cls: type | None = None) -> nn.Module:
    """A copy of G (built from ``cfg``) with spectral norm folded into plain weights, in eval mode; its
    images equal G's in eval mode exactly. ``cls``: the class to build (a Generator subclass)."""
    plain = (cls or Generator).from_config(plain_config(cfg))
    load_state(plain, folded_state(G), "the folded generator")
    return plain.eval()


class PlainSelfAttention(SelfAttention):
    """Self-attention with the explicit (N, N_keys) weights: matmul, softmax, matmul (every pairwise
    function of :class:`SelfAttention` through its ``attention_map``), for runtimes without a fused
    attention kernel. Same parameters and state dict as :class:`SelfAttention`."""

    def attention_map(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        if self.mode != "concatenation":
            return super().attention_map(q, k)
        # w . [theta_i; phi_j] with w as a column: torch's TorchScript-based ONNX exporter mistranslates the
        # matrix-vector product of these transposed token views (onnxruntime then differs by ~1)
        c8, w = q.shape[-1], self.concat_w.weight.float()[0]
        a, b = q.float() @ w[:c8, None], k.float() @ w[c8:, None]
        return F.relu(a + b.transpose(1, 2)) / k.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        _, C, H, W = x.shape
        q, k, v, _ = self.qkv(x)
        out = self.attention_map(q, k) @ v
        out = out.transpose(1, 2).reshape(-1, C // 2, H, W)
        return x + self.gamma * self.o(out)


class ExportedGenerator(nn.Module):
    """``(z, y) -> images`` in [-1, 1] (``z -> images`` for an unconditional generator): the function the
    traced formats record, with plain-op attention."""

    def __init__(self, plain: nn.Module):
        super().__init__()
        # no parameter requires grad: a traced module's outputs would carry requires_grad=True
        self.G = copy.deepcopy(plain).eval().requires_grad_(False)
        for m in self.G.modules():
            if type(m) is SelfAttention:
                m.__class__ = PlainSelfAttention
        self.conditional = is_conditional(plain)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.G(z, y if self.conditional else None)


def is_conditional(G: nn.Module) -> bool:
    """Whether G takes class labels (``model.num_classes: 0`` is an unconditional generator)."""
    return getattr(G, "num_classes", 0) > 0


def example_inputs(G: nn.Module, batch: int) -> tuple[torch.Tensor, ...]:
    """Inputs to trace with: latents ``(batch, z_dim)`` and, for a conditional G, int64 labels ``(batch,)``."""
    z = torch.zeros(batch, G.z_dim)
    return (z, torch.zeros(batch, dtype=torch.long)) if is_conditional(G) else (z,)
