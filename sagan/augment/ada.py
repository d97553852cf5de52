"""Adaptive discriminator augmentation (ADA; Karras et al. 2020, "Training Generative Adversarial Networks
with Limited Data").

Each image passes through a pipeline of operations, each applied with probability ``p`` (otherwise the
identity), with the paper's distributions, on images in [-1, 1]:

    x-flip       mirror with probability 1/2
    rotation     by k x 90 degrees, k uniform in 0..3
    translation  integer, uniform up to 1/8 of the size in each direction, border mirrored (reflect)
    brightness   x + N(0, 0.2)
    contrast     x * 2^N(0, 0.5)           (around mid-grey, 0 in [-1, 1])
    saturation   (x - grey) * 2^N(0, 1) + grey

The strength ``p`` starts at 0 and follows the overfitting heuristic r_t = E[sign(D(x_real))] over the
last ``train.ada_interval`` steps: above ``train.ada_target`` (0.6 in the paper) D is too sure of the
reals and p rises, below it p falls, by ``images / (ada_kimg * 1000)`` per update (``images``: the real
images D saw in the interval), so p can go from 0 to 1 in ``ada_kimg`` thousand images (500 in the
paper), clipped to [0, 1]. The signal is summed over every process (one collective per update), so p is
the same everywhere; p, the sums and the last signal are kept in checkpoints (exact resume).
"""

from __future__ import annotations

import torch

from ..checkpoint import scalar_state
from . import ops
from .registry import Augment, register_augment

TRANSLATION_RATIO = 0.125
BRIGHTNESS_STD, CONTRAST_LOG2_STD, SATURATION_LOG2_STD = 0.2, 0.5, 1.0


def ada_pipeline(x: torch.Tensor, p: torch.Tensor | float, gen: torch.Generator | None) -> torch.Tensor:
    """The ADA operations on ``x`` (B, 3, H, W) in [-1, 1], each image's each op applied with probability
    ``p``. Always draws the same random numbers, whatever ``p`` (so p never shifts later draws)."""
    n, _, h, w = x.shape
    dev = x.device
    p = torch.as_tensor(p, device=dev, dtype=torch.float32)

    def on(extra_shape=()) -> torch.Tensor:
        return torch.rand(n, *extra_shape, generator=gen, device=dev) < p

    def rand(*shape) -> torch.Tensor:
        return torch.rand(n, *shape, generator=gen, device=dev)

    def randn(*shape) -> torch.Tensor:
        return torch.randn(n, *shape, generator=gen, device=dev)

    def where(mask: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.where(mask.view(-1, 1, 1, 1), y, x)  # unselected images stay bit for bit

    x = ops.flip_x(x, on() & (rand() < 0.5))
    if h == w:
        x = ops.rotate90(x, torch.where(on(), (rand() * 4).long().clamp(max=3), 0))
    use_t, t = on(), (rand(2) * 2 - 1) * TRANSLATION_RATIO
    dy = torch.where(use_t, torch.round(t[:, 0] * h), 0).long()
    dx = torch.where(use_t, torch.round(t[:, 1] * w), 0).long()
    x = ops.shift(x, dx, dy, reflect=True)
    x = where(on(), ops.add_brightness(x, (randn() * BRIGHTNESS_STD).view(-1, 1, 1, 1)), x)
    x = where(on(), ops.contrast(x, torch.exp2(randn() * CONTRAST_LOG2_STD).view(-1, 1, 1, 1), around_mean=False), x)
    return where(on(), ops.saturate(x, torch.exp2(randn() * SATURATION_LOG2_STD).view(-1, 1, 1, 1)), x)


class AdaptiveAugment(Augment):
    active = True

    def __init__(self, target: float, interval: int, kimg: float, images_per_step: int, accelerator=None,
                 device: torch.device | str = "cpu"):
        self.target, self.interval, self.acc = target, interval, accelerator
        self.speed = images_per_step * interval / (kimg * 1000)  # change of p per update
        zero = lambda: torch.zeros((), device=device)  # noqa: E731
        self.p, self.signal = zero(), zero()
        self.sign_sum, self.count = zero(), zero()

    def __call__(self, x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        return ada_pipeline(x, self.p, gen)

    def observe(self, real_logits: torch.Tensor) -> None:
        self.sign_sum += torch.sign(real_logits.detach().float()).sum()
        self.count += real_logits.numel()

    def end_step(self, step: int) -> None:
        if step % self.interval:
            return
        totals = torch.stack([self.sign_sum, self.count])
        if self.acc is not None and self.acc.num_processes > 1:
            totals = self.acc.reduce(totals, "sum")
        signal = totals[0] / totals[1].clamp(min=1)
        adjust = torch.sign(signal - self.target) * self.speed
        self.p = torch.where(totals[1] > 0, (self.p + adjust).clamp(0.0, 1.0), self.p)
        self.signal = torch.where(totals[1] > 0, signal, self.signal)
        self.sign_sum.zero_()
        self.count.zero_()

    def describe(self) -> str:
        return (f"augment: ADA on every image D sees, p = {float(self.p):.4f} moving by {self.speed:.2e} every "
                f"{self.interval} steps towards E[sign(D(real))] = {self.target:g}")

    def log_values(self) -> dict[str, float]:
        return {"p": float(self.p), "signal": float(self.signal)}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k).detach().cpu().clone() for k in ("p", "signal", "sign_sum", "count")}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, v in scalar_state(state, ("p", "signal", "sign_sum", "count"), "ADA").items():
            setattr(self, k, v.to(self.p.device))


def _build(cfg, accelerator) -> AdaptiveAugment:
    t = cfg.train
    device = accelerator.device if accelerator is not None else "cpu"
    return AdaptiveAugment(target=t.ada_target, interval=t.ada_interval, kimg=t.ada_kimg,
                           images_per_step=t.d_steps * t.batch_size, accelerator=accelerator, device=device)


register_augment("ada", _build, "adaptive discriminator augmentation (Karras et al. 2020), p towards train.ada_target")
