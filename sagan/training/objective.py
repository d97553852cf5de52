"""Hyper-parameters of the objective that move during training, and StyleGAN2's lazy regularisation.

Schedules (R3GAN's "burn-in", Huang et al. 2024, brownvc/R3GAN): the penalties' gammas
(``train.r1_gamma`` / ``r2_gamma``), the learning rates (``lr_g`` / ``lr_d``) and Adam's beta2 (``beta2``)
go from their start value to ``<key>_end`` on a cosine over ``train.schedule_kimg`` thousand images
seen, then stay there (``<key>_end`` null: constant)::

    value(p) = end + (start - end) * (1 + cos(pi * p)) / 2,    p = min(images_seen / (1000 * schedule_kimg), 1)

R3GAN's CIFAR-10 run: gamma 0.05 -> 0.005, lr 2e-4 -> 5e-5, beta2 0.9 -> 0.99 over 20 Mimg of 250 Mimg.
``images_seen`` counts the real images D has been shown before the step (``train.d_steps`` global batches
per step), the count the training loop keeps in checkpoints: a resumed run continues the same curve, and
the values depend on the global batch only, not on how it is split into processes.

Lazy regularisation (Karras et al. 2020, StyleGAN2 section 3.1; NVlabs/stylegan2-ada-pytorch
``training/loss.py``, ``training_loop.py``): with ``train.reg_interval`` k > 1 the penalties get their own
D update after every k-th D update (the first, then k + 1, 2k + 1, ...), multiplied by k; k D updates
then make k + 1 optimiser steps, which D's Adam compensates for with lr x k/(k+1) and betas ^ (k/(k+1)).
With k = 1 the penalties join D's loss in every update (R3GAN) and Adam is left as configured.
"""

from __future__ import annotations

import math

SCHEDULED = ("r1_gamma", "r2_gamma", "lr_g", "lr_d", "beta2")  # keys with a ``<key>_end``


def cosine(start: float, end: float, position: float) -> float:
    """``start`` at position 0, ``end`` at 1 and beyond, a half cosine in between."""
    p = min(max(position, 0.0), 1.0)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * p))


def scheduled(t) -> bool:
    return t.schedule_kimg > 0 and any(getattr(t, f"{k}_end") is not None for k in SCHEDULED)


def penalised(t) -> bool:
    """Whether a gradient penalty (R1 or R2) is on."""
    return t.r1_gamma > 0 or t.r2_gamma > 0


def lazy_ratio(t) -> float:
    """k / (k + 1) for lazy regularisation (k = ``train.reg_interval`` > 1 with a penalty on), else 1."""
    k = t.reg_interval
    return k / (k + 1) if k > 1 and penalised(t) else 1.0


def regularises(t, d_update: int) -> bool:
    """Whether D update number ``d_update`` (0-based over the run: (step - 1) * d_steps + k) is followed by a
    lazy regularisation update (StyleGAN2 runs it at minibatch 0, k, 2k, ...)."""
    return t.reg_interval > 1 and penalised(t) and d_update % t.reg_interval == 0


def values_at(t, images_seen: int) -> dict[str, float]:
    """The scheduled hyper-parameters after ``images_seen`` real images: {r1_gamma, r2_gamma, lr_g, lr_d,
    beta2}, exactly the configured values when nothing is scheduled."""
    position = images_seen / (1000.0 * t.schedule_kimg) if t.schedule_kimg > 0 else 1.0
    out = {}
    for k in SCHEDULED:
        start, end = getattr(t, k), getattr(t, f"{k}_end")
        out[k] = start if end is None else cosine(start, end, position)
    return out


def optimiser_settings(t, values: dict[str, float]) -> dict[str, dict]:
    """Adam's lr / betas / eps of G and D for ``values`` (:func:`values_at`), D's with the lazy correction."""
    c = lazy_ratio(t)
    betas = (t.beta1, values["beta2"])
    d_betas = betas if c == 1 else tuple(b ** c for b in betas)
    return {"G": {"lr": values["lr_g"], "betas": betas, "eps": t.adam_eps},
            "D": {"lr": values["lr_d"] * c if c != 1 else values["lr_d"], "betas": d_betas, "eps": t.adam_eps}}


def describe(t) -> list[str]:
    """Start-up lines on the penalties, lazy regularisation and schedules (none for the paper's setting)."""
    def moving(k: str) -> str:
        end = getattr(t, f"{k}_end")
        return f"{getattr(t, k):g}" + (f" -> {end:g}" if end is not None and t.schedule_kimg > 0 else "")

    notes = []
    if penalised(t):
        terms = [f"{name} gamma {moving(k)}" for name, k in (("R1", "r1_gamma"), ("R2", "r2_gamma"))
                 if getattr(t, k) > 0]
        k, c = t.reg_interval, lazy_ratio(t)
        how = (f"a D update of their own after one D update in {k}, times {k}, D's Adam lr x {c:.4g} and betas "
               f"^ {c:.4g} (lazy, StyleGAN2)" if k > 1 else "in every D update")
        notes.append(f"gradient penalties: {', '.join(terms)}, on the images before augmentation, {how} "
                     "(loss parts d_loss_r1 / d_loss_r2)")
    if scheduled(t):
        keys = ", ".join(f"{k} {moving(k)}" for k in SCHEDULED if getattr(t, f"{k}_end") is not None)
        notes.append(f"schedules: {keys} on a cosine over {t.schedule_kimg:g} kimg of real images, then constant")
    return notes
