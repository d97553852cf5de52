"""Exponential moving average of the generator's weights (not in the SAGAN paper; BigGAN-PyTorch's
SAGAN recipe: decay 0.9999 from step 2000, Brock et al. 2019 appendix).

Semantics, step by step (``update(step)`` is called after the G optimizer step ``step``, 1-based):

- ``step < start``: the copy tracks G exactly (every parameter copied), so sampling early in a run shows
  what G draws now rather than an average over a random initialisation;
- ``step >= start``: ``ema = decay * ema + (1 - decay) * G`` for every parameter;
- buffers are always copied, never averaged: batch-norm running statistics and spectral norm's
  power-iteration vectors ``u``/``v``: averaging those shrinks them, which shrinks the estimate
  sigma = u^T W v and blows up the normalised weights W / sigma.

Batch-norm statistics of the averaged weights (issue 26). G's running statistics describe G's
activations, not those of the average: while the average still mixes in weights from many steps back
(fewer than about 1 / (1 - decay) steps since ``start``, or a G that moves fast), the copy normalised
with G's statistics draws washed-out or saturated, near-white tiles although G and the average are both
fine. So whenever the copy is read (:meth:`refresh`: sample grids, evaluations, checkpoints) its BN
statistics are recomputed for its own weights: BigGAN's standing statistics (Brock et al. 2019;
BigGAN-PyTorch and StudioGAN sample their EMA generator with them), a cumulative average over
``standing_batches`` batches of fresh latents with train-mode BN
(:func:`sagan.sampling.bn_stats.accumulate_standing_stats`). Averaging G's running statistics instead
would still describe G's activations, not the average's. The next ``update`` copies G's buffers again,
so the refresh never feeds back into training (resume stays exact), and before ``start`` the copy is G
itself and keeps G's statistics. ``u``/``v`` stay G's: the averaged weights' top singular vectors stay
within about 1% of G's (measured on the demo), a difference that changes no image visibly.

Spectrally normalised layers keep their raw weight as the parameter ``parametrizations.weight.original``
(torch.nn.utils.parametrizations), so the average is taken over raw weights and the EMA copy normalises
its averaged weight with the copied ``u``/``v`` in eval mode (no power iteration there).
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from ..sampling.bn_stats import accumulate_standing_stats


class EMA:
    """An eval-mode copy of ``model`` updated from it in place; ``model`` must be the unwrapped module
    (not DDP / compiled), whose parameter and buffer names match the copy's."""

    def __init__(self, model: nn.Module, decay: float, start: int, standing_batches: int = 0,
                 standing_batch_size: int = 64, seed: int = 0):
        self.decay, self.start = float(decay), int(start)
        # standing_batches 0: the copy keeps G's BN statistics (the behaviour before issue 26)
        self.standing_batches, self.standing_batch_size, self.seed = standing_batches, standing_batch_size, seed
        self.last_step = 0  # the last update's step
        self._stale = False  # BN buffers copied from G since the averaging started and not recomputed since
        self.model = model
        self.ema = copy.deepcopy(model).eval().requires_grad_(False)
        self._pairs = self._match(dict(self.ema.named_parameters()), dict(model.named_parameters()), "parameter")
        self._match(dict(self.ema.named_buffers()), dict(model.named_buffers()), "buffer")
        self._buffers = list(self.ema.named_buffers())

    @staticmethod
    def _match(dst: dict, src: dict, kind: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if dst.keys() != src.keys():
            raise ValueError(f"EMA copy and model differ in {kind} names: {sorted(dst.keys() ^ src.keys())[:5]}")
        return [(dst[k], src[k]) for k in dst]

    @torch.no_grad()
    def update(self, step: int) -> None:
        ema_p = [e for e, _ in self._pairs]
        src_p = [s.detach() for _, s in self._pairs]
        if step < self.start:
            torch._foreach_copy_(ema_p, src_p)
        else:
            # ema + (1 - decay) * (src - ema) == decay * ema + (1 - decay) * src
            torch._foreach_lerp_(ema_p, src_p, 1.0 - self.decay)
        # by name at every update: DDP's set-up replaces the model's buffer tensors (several processes)
        src = dict(self.model.named_buffers())
        for name, e in self._buffers:
            e.copy_(src[name])
        self.last_step = step
        self._stale = step >= self.start and self.standing_batches > 0

    def averaged_steps(self, step: int | None = None) -> int:
        """How many updates the average has taken in since ``start`` (0 before)."""
        step = self.last_step if step is None else step
        return max(0, step - self.start + 1)

    def refresh(self) -> nn.Module:
        """The copy, with BN statistics recomputed for its averaged weights when they are G's (module
        docstring). Call it on every process at the same point: under ``train.sync_bn`` its batch norms
        synchronise. The latents are the same at every call (seeded), so the statistics are a function of
        the weights: a resumed run writes what a straight one does."""
        if self._stale:
            was_training = self.ema.training
            accumulate_standing_stats(self.ema, self.standing_batches, self.standing_batch_size, seed=self.seed)
            self.ema.train(was_training)
            self._stale = False
        return self.ema

    def state_dict(self) -> dict:
        return self.ema.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.ema.load_state_dict(state)
        self._stale = False  # as stored: the next update copies G's buffers again

