"""One training iteration of the GAN, on its own: ``train.d_steps`` D updates, one G update, the EMA update.

``GANStep`` owns the networks' optimisers (Adam with TTUR, SAGAN section 4), the EMA of G and the loss
(``train.loss``, :mod:`sagan.training.losses`); the :class:`~sagan.training.Trainer` only feeds it batches. A test
can build one from a config and two networks and call it without any output directory::

    step = GANStep(cfg, G, D, Accelerator(cpu=True))
    stats = step(1, data_stream.next)       # {"d_loss_real": t, "d_loss_fake": t, "d_loss": t, "g_loss": t, ...}

Processes and batches. ``train.batch_size`` is the global batch: each of the P accelerate processes
runs ``grad_accum`` micro-batches of ``batch_size / (P * grad_accum)`` images per update, gradients are
averaged (DDP all-reduce on the last micro-batch only, ``no_sync`` before).

DDP and spectral norm: D is called once per micro-batch on ``cat(real, fake)`` rather than twice: a
second call through DDP re-broadcasts D's buffers (SN's ``u``/``v``) in place while the first call's
graph still needs them ("modified by an inplace operation"). D has no batch norm, so one call on the
concatenation computes the same logits. In the G step D is called unwrapped, with its parameters
frozen: no D gradients are needed there, and DDP would wait for gradients that never come.

Determinism: the latents and fake labels of step ``s`` on process ``r`` come from a generator seeded by
``(seed, s, r)``, so a resumed run draws exactly what an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch

from ..config import Config
from ..data.stream import mix_seed
from .ema import EMA
from .losses import auxiliary_classifier_parts, get_loss

Batches = list[tuple[torch.Tensor, torch.Tensor]]
LOGIT_STATS = ("d_logits_real", "d_logits_fake")


def grad_norm(params) -> torch.Tensor:
    norms = [torch.linalg.vector_norm(p.grad.float()) for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())


class GANStep:
    def __init__(self, cfg: Config, G: torch.nn.Module, D: torch.nn.Module, accelerator):
        t = cfg.train
        self.cfg, self.acc = cfg, accelerator
        self.loss = get_loss(t.loss)
        self.device = accelerator.device
        self.rank, self.world = accelerator.process_index, accelerator.num_processes
        self.G_raw, self.D_raw = G, D
        self.ema = EMA(G, t.ema_decay, t.ema_start) if t.ema else None
        self.opt_G = torch.optim.Adam(G.parameters(), lr=t.lr_g, betas=(t.beta1, t.beta2), eps=t.adam_eps)
        self.opt_D = torch.optim.Adam(D.parameters(), lr=t.lr_d, betas=(t.beta1, t.beta2), eps=t.adam_eps)
        self.per_process = t.batch_size // (t.grad_accum * self.world)  # as EpochBatchSampler cuts the batch
        self.memory_format = torch.channels_last if t.channels_last else torch.preserve_format
        # AC-GAN (model.d_cond: ac): D also returns class logits, whose cross-entropy joins both losses
        self.ac = cfg.model.d_cond == "ac" and cfg.model.num_classes > 0
        self._prepared = False

    def prepare(self) -> "GANStep":
        """Hand the networks and optimisers to accelerate (after any state was loaded into them)."""
        t = self.cfg.train
        self.G, self.D, self.opt_G, self.opt_D = self.acc.prepare(self.G_raw, self.D_raw, self.opt_G, self.opt_D)
        # G step: D unwrapped (frozen, no gradient sync); accelerate has already put autocast on its forward
        self.D_gstep = self.D_raw
        if t.compile:
            # PITFALLS: torch.compile + DDP + spectral norm has an open PyTorch bug (113415): test first
            self.G, self.D, self.D_gstep = (torch.compile(m) for m in (self.G, self.D, self.D_gstep))
        self._prepared = True
        return self

    # ---- hyper-parameters on resume ---------------------------------------------------------------

    def apply_hyperparameters(self) -> list[str]:
        """Set lr / betas / eps of both optimisers from the config (a resumed optimizer state brings the
        checkpoint's back); returns one description per value that changed."""
        t = self.cfg.train
        changes = []
        for opt, name, lr in ((self.opt_G, "G", t.lr_g), (self.opt_D, "D", t.lr_d)):
            target = {"lr": lr, "betas": (t.beta1, t.beta2), "eps": t.adam_eps}
            for group in opt.param_groups:
                for key, value in target.items():
                    old = tuple(group[key]) if isinstance(group[key], (list, tuple)) else group[key]
                    if old != value:
                        changes.append(f"{name} {key} {old} -> {value}")
                        group[key] = value
        return sorted(set(changes))

    # ---- one step ---------------------------------------------------------------------------------

    def _latents(self, gen: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn(n, self.cfg.model.z_dim, generator=gen, device=self.device)
        # unconditional (num_classes 0): all-zero labels, which the networks ignore
        y = torch.randint(max(self.cfg.model.num_classes, 1), (n,), generator=gen, device=self.device)
        return z, y

    def _d_out(self, D, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D's logits, and its class logits when it is an AC-GAN D (else None)."""
        return D(x, y, return_classes=True) if self.ac else (D(x, y), None)

    def _sync(self, model, last: bool):
        return contextlib.nullcontext() if last else self.acc.no_sync(model)

    def d_update(self, batches: Batches, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """One D step over the micro-batches of one global batch; returns D's loss parts and mean logits."""
        fmt = self.memory_format
        A = len(batches)
        self.opt_D.zero_grad(set_to_none=True)
        totals: dict[str, torch.Tensor] = {}
        for m, (x, y) in enumerate(batches):
            x = x.to(self.device, non_blocking=True, memory_format=fmt)
            y = y.to(self.device, non_blocking=True)
            z, y_fake = self._latents(gen, len(y))
            with torch.no_grad():
                fake = self.G(z, y_fake)
            with self._sync(self.D, last=m == A - 1):
                labels = torch.cat([y, y_fake])
                logits, classes = self._d_out(self.D, torch.cat([x, fake.to(x.dtype)]), labels)  # one call (module doc)
                real_logits, fake_logits = logits.float().split([len(x), len(fake)])
                loss, parts = self.loss.d_loss(real_logits, fake_logits)
                if classes is not None:  # AC-GAN: D classifies real images and G's (Odena et al. 2017)
                    parts.update(auxiliary_classifier_parts(classes, labels, {"d_loss_ac_real": len(x),
                                                                              "d_loss_ac_fake": len(fake)}))
                    loss = sum(parts.values())
                self.acc.backward(loss / A)
            stats = {**parts, "d_loss": loss, "d_logits_real": real_logits.mean(), "d_logits_fake": fake_logits.mean()}
            for k, v in stats.items():
                totals[k] = totals.get(k, 0) + v.detach() / A
        self.opt_D.step()
        return totals

    def g_update(self, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """One G step (``grad_accum`` micro-batches of fresh latents); returns G's mean loss ``g_loss``
        (and its AC-GAN part ``g_loss_ac``)."""
        A = self.cfg.train.grad_accum
        self.opt_G.zero_grad(set_to_none=True)
        self.D_raw.requires_grad_(False)
        totals: dict[str, torch.Tensor] = {}
        try:
            for m in range(A):
                z, y_fake = self._latents(gen, self.per_process)
                with self._sync(self.G, last=m == A - 1):
                    logits, classes = self._d_out(self.D_gstep, self.G(z, y_fake), y_fake)
                    parts = {"g_loss": self.loss.g(logits)}
                    if classes is not None:  # AC-GAN: G wants its images classified as their labels
                        parts.update(auxiliary_classifier_parts(classes, y_fake, {"g_loss_ac": len(y_fake)}))
                        parts["g_loss"] = parts["g_loss"] + parts["g_loss_ac"]
                    self.acc.backward(parts["g_loss"] / A)
                for k, v in parts.items():
                    totals[k] = totals.get(k, 0) + v.detach() / A
        finally:
            self.D_raw.requires_grad_(True)
        self.opt_G.step()
        return totals

    def __call__(self, step: int, next_batches: Callable[[], Batches]) -> dict[str, torch.Tensor]:
        """G step number ``step`` (1-based): D updates on ``train.d_steps`` global batches from
        ``next_batches``, one G update, the EMA update. Returns the step's statistics (on the device: no
        host sync here), D's averaged over its updates."""
        if not self._prepared:
            self.prepare()
        t = self.cfg.train
        # latents of this step on this process: a pure function of (seed, step, rank) -> exact resume
        gen = torch.Generator(device=self.device).manual_seed(mix_seed(t.seed, step, self.rank))
        stats: dict[str, torch.Tensor] = {}
        for _ in range(t.d_steps):
            for k, v in self.d_update(next_batches(), gen).items():
                stats[k] = stats.get(k, 0) + v / t.d_steps
        stats.update(self.g_update(gen))
        if self.ema is not None and not self.acc.optimizer_step_was_skipped:
            self.ema.update(step)
        return stats

    def sample_generator(self) -> torch.nn.Module:
        """What grids and evaluations sample from: the EMA generator, else G itself."""
        return self.ema.ema if self.ema is not None else self.G_raw

    def grad_norms(self) -> dict[str, float]:
        return {"G": float(grad_norm(self.G_raw.parameters())), "D": float(grad_norm(self.D_raw.parameters()))}

    def weights_finite(self) -> bool:
        flags = [torch.isfinite(p).all() for m in (self.G_raw, self.D_raw) for p in m.parameters()]
        ok = torch.stack(flags).all().float()
        return bool(self.acc.reduce(ok, "sum") == self.world) if self.world > 1 else bool(ok)
