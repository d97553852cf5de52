"""Exponential moving average of the generator's weights (not in the SAGAN paper; BigGAN-PyTorch's
SAGAN recipe: decay 0.9999 from step 2000, Brock et al. 2019 appendix).

Semantics, step by step (``update(step)`` is called after the G optimizer step ``step``, 1-based):

- ``step < start``: the copy tracks G exactly (every parameter copied), so sampling early in a run shows
  what G draws now rather than an average over a random initialisation;
- ``step >= start``: ``ema = decay * ema + (1 - decay) * G`` for every parameter;
- buffers are always copied, never averaged: batch-norm running statistics (the EMA copy runs in eval
  mode with G's statistics, as BigGAN-PyTorch does without its "standing stats") and spectral norm's
  power-iteration vectors ``u``/``v``: averaging those shrinks them and blows up the normalised weights
  (PITFALLS, "Spectral norm").

Spectrally normalised layers keep their raw weight as the parameter ``parametrizations.weight.original``
(torch.nn.utils.parametrizations), so the average is taken over raw weights and the EMA copy normalises
its averaged weight with the copied ``u``/``v`` in eval mode (no power iteration there).
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn


class EMA:
    """An eval-mode copy of ``model`` updated from it in place; ``model`` must be the unwrapped module
    (not DDP / compiled), whose parameter and buffer names match the copy's."""

    def __init__(self, model: nn.Module, decay: float, start: int):
        self.decay, self.start = float(decay), int(start)
        self.model = model
        self.ema = copy.deepcopy(model).eval().requires_grad_(False)
        self._pairs = self._match(dict(self.ema.named_parameters()), dict(model.named_parameters()), "parameter")
        self._buffers = self._match(dict(self.ema.named_buffers()), dict(model.named_buffers()), "buffer")

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
        for e, s in self._buffers:
            e.copy_(s)

    def state_dict(self) -> dict:
        return self.ema.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.ema.load_state_dict(state)
