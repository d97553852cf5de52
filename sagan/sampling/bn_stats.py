"""Which batch-norm statistics G uses when it draws samples: running, per-batch, or standing.

The choice moves FID a lot (StudioGAN reports train- and eval-mode BN side by side), so every report
states it (:func:`bn_mode_description`):

- ``running``: eval mode; BN normalises with the running statistics stored in the checkpoint.
- ``batch``: BN normalises each batch with that batch's own statistics, as the official SAGAN release's
  BN layers always do (brain-research/self-attention-gan ``ops.py``: ``tf.nn.moments``, no moving
  averages). Images then depend on the other images of their batch, so on the batch size.
- ``standing``: BigGAN's standing statistics (Brock et al. 2019, BigGAN-PyTorch
  ``accumulate_standing_stats``: 16 accumulations): reset the running statistics, run G with train-mode
  BN and a cumulative average (``momentum=None``) over fresh latents and uniformly random labels, then
  sample in eval mode with what was accumulated. Recomputed per truncation value, as BigGAN does.

Everything but the batch norms stays in eval mode in every mode: spectral norm's power iteration runs
only in train mode (torch's ``spectral_norm`` parametrization) and would change the normalised weights.

:func:`prepare_generator` changes the module it is given (the standing statistics overwrite the running
ones): pass your own copy, e.g. the generator :func:`sagan.models.load_generator` returns, never the
training loop's live G or EMA. The mode sticks to the module (attribute ``bn_stats_mode``) and
:func:`sagan.sampling.draw.generate` applies it on every call through :func:`sampling_mode`.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import UserError
from .latents import sample_latents

BN_MODES = ("running", "batch", "standing")
MODE_ATTR = "bn_stats_mode"
# the checkpoint's running statistics, kept when standing statistics replace them, so that a later
# prepare_generator(G, "running") on the same module gets them back
_SAVED_ATTR = "_bn_checkpoint_stats"
# standing statistics draw their latents from seed + this offset, so that the same --seed for sampling
# and for the statistics does not reuse the sampled latents
STANDING_SEED_OFFSET = 1_000_003


def batch_norms(G: torch.nn.Module) -> list[_BatchNorm]:
    """Every batch norm of G: the affine-free BN inside each ``ConditionalBatchNorm2d`` and the plain
    output ``nn.BatchNorm2d``."""
    return [m for m in G.modules() if isinstance(m, _BatchNorm)]


def check_mode(mode: str, standing_batches: int = 16) -> None:
    if mode not in BN_MODES:
        raise UserError(f"BN statistics mode {mode!r} is unknown; use one of {', '.join(BN_MODES)}")
    if mode == "standing" and standing_batches < 1:
        raise UserError(f"standing statistics need at least 1 batch, got {standing_batches}")


def bn_mode_description(mode: str, standing_batches: int = 16) -> str:
    """One line for reports and summaries: which statistics G's batch norms used."""
    check_mode(mode, standing_batches)
    if mode == "running":
        return "BN: running statistics from the checkpoint (eval mode)"
    if mode == "batch":
        return "BN: per-batch statistics (train-mode BN; images depend on their batch)"
    return f"BN: standing statistics over {standing_batches} batches of fresh latents (BigGAN)"


def prepare_generator(G: torch.nn.Module, mode: str, *, standing_batches: int = 16, batch_size: int = 64,
                      seed: int = 0, device=None, truncation: float | None = None) -> torch.nn.Module:
    """Set G up to sample with the BN statistics of ``mode`` (one of :data:`BN_MODES`); returns G.

    Changes G in place (``standing`` overwrites its running statistics): pass your own copy. ``standing``
    accumulates over ``standing_batches`` batches of ``batch_size`` latents (truncated at ``truncation``
    like the samples) and labels drawn from ``seed``, so the statistics are the same for the same
    arguments. Calling it again with another mode on the same G starts from the checkpoint's statistics.
    """
    check_mode(mode, standing_batches)
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")
    G.eval()
    _restore_checkpoint_stats(G)
    if mode == "standing":
        _save_checkpoint_stats(G)
        accumulate_standing_stats(G=G, num_batches=standing_batches, batch_size=batch_size, seed=seed, device=device,
                                  truncation=truncation)
    setattr(G, MODE_ATTR, mode)
    return G


@torch.no_grad()
def accumulate_standing_stats(G: torch.nn.Module, num_batches: int, batch_size: int, seed: int, device=None,
                              truncation: float | None = None) -> None:
    """Replace every BN layer's running statistics by their cumulative average over ``num_batches``
    batches: running_mean = mean of the per-batch means, running_var = mean of the per-batch (unbiased)
    variances (``momentum=None``, BigGAN-PyTorch)."""
    device = torch.device(device) if device is not None else next(G.parameters()).device
    norms = batch_norms(G)
    momenta = [m.momentum for m in norms]
    num = num_batches * batch_size
    z = sample_latents(num, G.z_dim, seed + STANDING_SEED_OFFSET, truncation)
    labels = torch.randint(max(G.num_classes, 1), (num,), generator=torch.Generator().manual_seed(seed))  # 0: uncond.
    with _train_mode_bn(G, norms):
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        try:
            for i in range(0, num, batch_size):
                G(z[i : i + batch_size].to(device), labels[i : i + batch_size].to(device))
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum


@contextlib.contextmanager
def sampling_mode(G: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """G in eval mode, with its batch norms as its ``bn_stats_mode`` says (``running`` when unset);
    every module's train/eval flag is restored afterwards."""
    flags = [(m, m.training) for m in G.modules()]
    G.eval()
    try:
        if getattr(G, MODE_ATTR, "running") == "batch":
            norms = batch_norms(G)
            tracked = [m.track_running_stats for m in norms]
            # train-mode BN with track_running_stats off normalises with the batch's statistics and
            # leaves running_mean/var and num_batches_tracked alone (torch's _BatchNorm.forward)
            for m in norms:
                m.track_running_stats = False
            try:
                with _train_mode_bn(G, norms):
                    yield G
            finally:
                for m, t in zip(norms, tracked):
                    m.track_running_stats = t
        else:
            yield G
    finally:
        for m, training in flags:
            m.training = training


@contextlib.contextmanager
def _train_mode_bn(G: torch.nn.Module, norms: list[_BatchNorm]) -> Iterator[None]:
    """Only the batch norms in train mode; spectral norm, attention and the rest stay in eval mode."""
    G.eval()
    for m in norms:
        m.train()
    try:
        yield
    finally:
        for m in norms:
            m.eval()


def _save_checkpoint_stats(G: torch.nn.Module) -> None:
    if getattr(G, _SAVED_ATTR, None) is None:
        saved = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in batch_norms(G)]
        setattr(G, _SAVED_ATTR, saved)


def _restore_checkpoint_stats(G: torch.nn.Module) -> None:
    saved = getattr(G, _SAVED_ATTR, None)
    if saved is not None:
        for m, state in zip(batch_norms(G), saved):
            m.load_state_dict(state)
        setattr(G, _SAVED_ATTR, None)
