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

Determinism and split invariance: the latents and fake labels of each phase of step ``s`` (D update
``k``, the G update) are one draw of the whole global batch from a generator seeded by
``(seed, s, phase)``, cut like the real images: micro-batch ``m`` of process ``r`` is slice ``m * P + r``.
What a micro-batch sees therefore depends only on (seed, step, global micro-batch index), not on how the
batch is split into processes x accumulation steps, and a resumed run draws exactly what an uninterrupted
one would. Spectral norm runs one power iteration per update however it is split (the micro-batches
after the first reuse ``u``/``v``), so P processes x A accumulation steps give the same weights for every
P * A with the same micro-batch size, up to float summation order. ``train.sync_bn`` takes G's batch
statistics over all processes' images (:func:`sagan.models.layers.synchronise_batch_norm`, any backend).

Small data (``train.augment``, ``train.lecam_weight``): the augmentation (:mod:`sagan.augment`) is applied
to everything D sees, real and fake, in the D and the G step, its randomness seeded by (seed, step,
phase, global micro-batch index): split-invariant like the latents; the regularisers (:mod:`sagan.training.regularisers`) add their parts to D's loss. Their
states (ADA's p, LeCam's averages) travel in checkpoints (:func:`sagan.training.run_state.small_data_state`).

Objectives (issue 28; :mod:`sagan.training.objective`): a loss that reads real logits in G's step
(``rpgan``) gets D's logits on the real images of the step's last D update, paired with G's fakes row by
row (:mod:`sagan.training.losses`). The gradient penalties R1 / R2 (``train.r1_gamma`` / ``r2_gamma``)
take D's gradient with respect to the real / generated images before augmentation (it flows through the
augmentation) in the same D call as the loss, with the math attention kernel (the fused kernels have no
double backward) and without computing any weight gradient in that first backward
(:func:`sagan.training.regularisers.squared_gradient_norms`); they are the D loss parts ``d_loss_r1`` /
``d_loss_r2`` (gamma and any lazy factor included). With ``train.reg_interval`` k > 1 they are a D update
of their own after every k-th one. Which D updates regularise and the schedules' position follow from the
step and the images seen before it, so exact resume and split invariance hold as above.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch

from ..augment import build_augment
from ..config import Config
from ..data.batch_plan import BatchPlan
from ..data.stream import mix_seed
from .ema import EMA
from ..models.layers import batch_norm_synchronised, power_iteration_paused, spectral_norms, synchronise_batch_norm
from .losses import auxiliary_classifier_parts, get_loss
from . import objective
from .regularisers import build_regularisers, math_attention, orthogonal_penalty, squared_gradient_norms

Batches = list[tuple[torch.Tensor, torch.Tensor]]
LOGIT_STATS = ("d_logits_real", "d_logits_fake")
AUGMENT_STREAM = 0x417567  # tells the augmentation's seeds apart from the phases' (seed, step, phase)


def grad_norm(params) -> torch.Tensor:
    norms = [torch.linalg.vector_norm(p.grad.float()) for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())


class GANStep:
    def __init__(self, cfg: Config, G: torch.nn.Module, D: torch.nn.Module, accelerator, plan: BatchPlan | None = None):
        """``plan``: the run's split of the global batch (default: the config's on the accelerator's processes)."""
        t = cfg.train
        self.cfg, self.acc = cfg, accelerator
        self.loss = get_loss(t.loss)
        self.device = accelerator.device
        self.augment = build_augment(cfg, accelerator)
        self.regularisers = build_regularisers(cfg, self.device)
        self.rank, self.world = accelerator.process_index, accelerator.num_processes
        self.bn_group = None
        if t.sync_bn and self.world > 1:  # before the EMA copy; a group of its own, apart from DDP's
            synchronise_batch_norm(G)
            self.bn_group = torch.distributed.new_group()
        self.G_raw, self.D_raw = G, D
        self._norms = spectral_norms(G, D)
        # the EMA's BN statistics are recomputed for its weights when it is read (issue 26; sagan/training/ema.py)
        self.ema = EMA(G, t.ema_decay, t.ema_start, standing_batches=t.ema_standing_batches,
                       standing_batch_size=min(t.batch_size, 64), seed=t.seed) if t.ema else None
        self.opt_G = torch.optim.Adam(G.parameters(), lr=t.lr_g, betas=(t.beta1, t.beta2), eps=t.adam_eps)
        self.opt_D = torch.optim.Adam(D.parameters(), lr=t.lr_d, betas=(t.beta1, t.beta2), eps=t.adam_eps)
        self.plan = plan if plan is not None else BatchPlan.of(cfg, self.world)
        self.per_process = self.plan.micro_batch  # as EpochBatchSampler cuts the batch
        self.memory_format = torch.channels_last if t.channels_last else torch.preserve_format
        # AC-GAN (model.d_cond: ac): D also returns class logits, whose cross-entropy joins both losses
        self.ac = cfg.model.d_cond == "ac" and cfg.model.num_classes > 0
        # issue 28: the schedules' values in use, Adam's lazy-regularisation correction (objective module)
        self.hyper = objective.values_at(t, 0)
        self._moving = objective.scheduled(t) or objective.lazy_ratio(t) != 1
        if self._moving:
            self.set_hyperparameters(0)
        self._prepared = False

    def prepare(self) -> "GANStep":
        """Hand the networks and optimisers to accelerate (after any state was loaded into them)."""
        t = self.cfg.train
        self.G, self.D, self.opt_G, self.opt_D = self.acc.prepare(self.G_raw, self.D_raw, self.opt_G, self.opt_D)
        # G step: D unwrapped (frozen, no gradient sync); accelerate has already put autocast on its forward
        self.D_gstep = self.D_raw
        if t.compile:
            # one process only (the trainer refuses several: pytorch/pytorch#113415, DDP + parametrizations)
            # static shapes: D sees 2B images in the D step and B in the G step through the same forward code,
            # and the automatic dynamic shapes a second shape would switch on fail in inductor's CPU bf16 path
            # ("cannot determine truth value of Relational", torch 2.14); a training run has only these shapes
            self.G, self.D, self.D_gstep = (torch.compile(m, dynamic=False) for m in (self.G, self.D, self.D_gstep))
        self._prepared = True
        return self

    # ---- hyper-parameters on resume ---------------------------------------------------------------

    def apply_hyperparameters(self, images_seen: int = 0) -> list[str]:
        """Set lr / betas / eps of both optimisers from the config (a resumed optimizer state brings the
        checkpoint's back), at the schedules' position after ``images_seen`` images and with the lazy
        correction; returns one description per value that changed."""
        t = self.cfg.train
        changes = []
        settings = objective.optimiser_settings(t, objective.values_at(t, images_seen))
        for opt, name in ((self.opt_G, "G"), (self.opt_D, "D")):
            target = settings[name]
            for group in opt.param_groups:
                for key, value in target.items():
                    old = tuple(group[key]) if isinstance(group[key], (list, tuple)) else group[key]
                    if old != value:
                        changes.append(f"{name} {key} {old} -> {value}")
                        group[key] = value
        return sorted(set(changes))

    def set_hyperparameters(self, images_seen: int) -> None:
        """The scheduled values after ``images_seen`` images: the gammas in use and both optimisers' settings."""
        t = self.cfg.train
        self.hyper = objective.values_at(t, images_seen)
        for opt, settings in zip((self.opt_G, self.opt_D), objective.optimiser_settings(t, self.hyper).values()):
            for group in opt.param_groups:
                group.update(settings)

    def log_values(self) -> dict[str, float]:
        """What the last step used of the moving hyper-parameters (TensorBoard ``lr/*``, ``objective/*``);
        empty when nothing moves and no penalty is on."""
        t = self.cfg.train
        if not (self._moving or objective.penalised(t)):
            return {}
        d = objective.optimiser_settings(t, self.hyper)["D"]
        out = {"lr/G": self.hyper["lr_g"], "lr/D": d["lr"], "objective/beta2": self.hyper["beta2"]}
        out.update({f"objective/{k}": self.hyper[k] for k in ("r1_gamma", "r2_gamma") if getattr(t, k) > 0})
        return out

    # ---- one step ---------------------------------------------------------------------------------

    def _latents(self, gen: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn(n, self.cfg.model.z_dim, generator=gen, device=self.device)
        # unconditional (num_classes 0): all-zero labels, which the networks ignore
        y = torch.randint(max(self.cfg.model.num_classes, 1), (n,), generator=gen, device=self.device)
        return z, y

    def phase_generator(self, step: int, phase: int) -> torch.Generator:
        """The generator of one phase of step ``step`` (0: the G update, 1 + k: D update k), the same on
        every process: a pure function of (seed, step, phase)."""
        return torch.Generator(device=self.device).manual_seed(mix_seed(self.cfg.train.seed, step, phase))

    def micro_latents(self, gen: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """This process's latents and fake labels, one pair per micro-batch: the phase's whole global batch
        is drawn (identically on every process) and cut like the real images, micro-batch m of process r
        being slice m * P + r, so what a micro-batch gets does not depend on the split."""
        z, y = self._latents(gen, self.cfg.train.batch_size)
        b = self.per_process
        rows = [slice((m * self.world + self.rank) * b, (m * self.world + self.rank + 1) * b)
                for m in range(self.cfg.train.grad_accum)]
        return [(z[r], y[r]) for r in rows]

    def _d_out(self, D, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D's logits, and its class logits when it is an AC-GAN D (else None)."""
        return D(x, y, return_classes=True) if self.ac else (D(x, y), None)

    def _sync(self, model, last: bool):
        return contextlib.nullcontext() if last else self.acc.no_sync(model)

    def _micro(self, m: int):
        """Context of micro-batch ``m`` of an update: one power iteration per update, on its first."""
        return power_iteration_paused(self._norms) if m else contextlib.nullcontext()

    # ---- small data: augmentation and regularisers (sagan.augment, .regularisers) ----------------------

    def augment_generator(self, step: int, phase: int, m: int) -> torch.Generator:
        """The generator of the augmentation of micro-batch ``m`` of this process in one phase: seeded by
        (seed, step, phase, global micro-batch index ``m * P + r``), so the augmented images of a global
        batch, like its latents, do not depend on how it is split into processes x accumulation steps."""
        index = m * self.world + self.rank
        seed = mix_seed(self.cfg.train.seed, step, phase, index, AUGMENT_STREAM)
        return torch.Generator(device=self.device).manual_seed(seed)

    def _augment(self, x: torch.Tensor, step: int, phase: int, m: int) -> torch.Tensor:
        return self.augment(x, self.augment_generator(step, phase, m)) if self.augment.active else x

    def _d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor, step: int):
        """The loss's D parts plus the regularisers' parts; the augmentation watches D on the reals."""
        loss, parts = self.loss.d_loss(real_logits, fake_logits)
        for reg in self.regularisers.values():
            extra = reg.d_terms(real_logits, fake_logits, step)
            parts = {**parts, **extra}
            loss = loss + sum(extra.values())
        self.augment.observe(real_logits)
        return loss, parts

    def _end_d_update(self, totals: dict[str, torch.Tensor], step: int) -> None:
        if not self.regularisers:
            return
        means = torch.stack([totals["d_logits_real"], totals["d_logits_fake"]])
        if self.world > 1:
            means = self.acc.reduce(means, "mean")
        for reg in self.regularisers.values():
            reg.end_d_update(means[0], means[1], step)

    # ---- the updates ------------------------------------------------------------------------------

    def d_update(self, batches: Batches, gen: torch.Generator, step: int = 0, phase: int = 1,
                 update: int | None = None) -> dict[str, torch.Tensor]:
        """One D step (phase ``phase`` of step ``step``) over the micro-batches of one global batch, with
        latents from ``gen``; returns D's loss parts and mean logits. ``update``: the D update's number in
        the run (0-based; default from step and phase), which says when a lazy penalty update follows."""
        t = self.cfg.train
        fmt = self.memory_format
        A = len(batches)
        update = (step - 1) * t.d_steps + phase - 1 if update is None else update
        joint = objective.penalised(t) and t.reg_interval == 1  # the penalties join this update's loss
        lazy = objective.regularises(t, update)  # a penalty update of their own follows this one
        kept = []
        self.opt_D.zero_grad(set_to_none=True)
        totals: dict[str, torch.Tensor] = {}
        for m, ((x, y), (z, y_fake)) in enumerate(zip(batches, self.micro_latents(gen))):
            x = x.to(self.device, non_blocking=True, memory_format=fmt)
            y = y.to(self.device, non_blocking=True)
            with torch.no_grad(), self._micro(m):
                fake = self.G(z, y_fake)
            if lazy:
                kept.append((x, y, fake, y_fake))
            with self._sync(self.D, last=m == A - 1), self._micro(m):
                labels = torch.cat([y, y_fake])
                if joint:
                    loss, parts, logits, classes = self._penalised_d_loss(x, fake, labels, step, phase, m)
                else:
                    seen = self._augment(torch.cat([x, fake.to(x.dtype)]), step, phase, m)
                    logits, classes = self._d_out(self.D, seen, labels)  # one call (module doc)
                real_logits, fake_logits = logits.float().split([len(x), len(fake)])
                if not joint:
                    loss, parts = self._d_loss(real_logits, fake_logits, step)
                if classes is not None:  # AC-GAN: D classifies real images and G's (Odena et al. 2017)
                    ac = auxiliary_classifier_parts(classes, labels, {"d_loss_ac_real": len(x),
                                                                      "d_loss_ac_fake": len(fake)})
                    parts = {**parts, **ac}
                    loss = loss + sum(ac.values())
                self.acc.backward(loss / A)
            stats = {**parts, "d_loss": loss, "d_logits_real": real_logits.mean(), "d_logits_fake": fake_logits.mean()}
            for k, v in stats.items():
                totals[k] = totals.get(k, 0) + v.detach() / A
        self.opt_D.step()
        self._end_d_update(totals, step)
        if objective.penalised(t) and t.reg_interval > 1:  # the same keys in every update (0 between penalties)
            penalty = self._penalty_update(kept, step, phase) if lazy else self._zero_penalty_parts()
            totals.update(penalty)
            totals["d_loss"] = totals["d_loss"] + sum(penalty.values())
        return totals

    # ---- gradient penalties R1 / R2 (issue 28) -------------------------------------------------------

    def _penalty_inputs(self, x: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The real and generated images as leaves that the penalties differentiate D with respect to (before
        the augmentation, which the gradient flows through), in the real images' dtype."""
        t = self.cfg.train
        return (x.detach().requires_grad_(t.r1_gamma > 0), fake.detach().to(x.dtype).requires_grad_(t.r2_gamma > 0))

    def _input_gradients(self, logits: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per-image squared norms of the gradient of D's summed logits with respect to ``inputs`` (only
        those: no weight gradient is computed in this backward)."""
        return squared_gradient_norms(logits, inputs)

    def _penalty_parts(self, logits, x_in, fake_in, scale: float) -> dict[str, torch.Tensor]:
        """``d_loss_r1`` / ``d_loss_r2``: scale * (gamma / 2) * mean ||grad||^2 at the scheduled gammas."""
        on = [(name, inp, self.hyper[key]) for name, key, inp in (("d_loss_r1", "r1_gamma", x_in),
                                                                   ("d_loss_r2", "r2_gamma", fake_in))
              if getattr(self.cfg.train, key) > 0]
        norms = self._input_gradients(logits, [inp for _, inp, _ in on])
        return {name: (scale * gamma / 2) * n.mean() for (name, _, gamma), n in zip(on, norms)}

    def _zero_penalty_parts(self) -> dict[str, torch.Tensor]:
        t = self.cfg.train
        return {name: torch.zeros((), device=self.device) for name, key in (("d_loss_r1", "r1_gamma"),
                                                                              ("d_loss_r2", "r2_gamma"))
                if getattr(t, key) > 0}

    def _penalised_d_loss(self, x, fake, labels, step: int, phase: int, m: int):
        """D's loss with the penalties joined (reg_interval 1, R3GAN): one D call on the augmented
        concatenation of the input leaves; returns (loss, parts, logits, class logits)."""
        x_in, fake_in = self._penalty_inputs(x, fake)
        with math_attention():
            seen = self._augment(torch.cat([x_in, fake_in]), step, phase, m)
            logits, classes = self._d_out(self.D, seen, labels)
        real_logits, fake_logits = logits.float().split([len(x), len(fake)])
        loss, parts = self._d_loss(real_logits, fake_logits, step)
        penalty = self._penalty_parts(logits, x_in, fake_in, 1.0)
        return loss + sum(penalty.values()), {**parts, **penalty}, logits, classes

    def _penalty_update(self, kept, step: int, phase: int) -> dict[str, torch.Tensor]:
        """Lazy regularisation: a D update on the penalties alone, times ``train.reg_interval``, on the same
        real images, fakes and augmentation as the update before it (StyleGAN2's ``Dreg`` phase)."""
        A, k = len(kept), self.cfg.train.reg_interval
        self.opt_D.zero_grad(set_to_none=True)
        totals: dict[str, torch.Tensor] = {}
        for m, (x, y, fake, y_fake) in enumerate(kept):
            with self._sync(self.D, last=m == A - 1), self._micro(m):
                x_in, fake_in = self._penalty_inputs(x, fake)
                with math_attention():
                    seen = self._augment(torch.cat([x_in, fake_in]), step, phase, m)
                    logits, classes = self._d_out(self.D, seen, torch.cat([y, y_fake]))
                parts = self._penalty_parts(logits, x_in, fake_in, float(k))
                # every weight of D in the graph, as DDP expects (StyleGAN2 adds `real_logits * 0` likewise)
                unused = logits.float().sum() + (classes.float().sum() if classes is not None else 0)
                self.acc.backward((sum(parts.values()) + 0 * unused) / A)
            for name, v in parts.items():
                totals[name] = totals.get(name, 0) + v.detach() / A
        self.opt_D.step()
        return totals

    def g_update(self, gen: torch.Generator, step: int = 0, reals: Batches | None = None) -> dict[str, torch.Tensor]:
        """One G step (``grad_accum`` micro-batches of fresh latents); returns G's mean loss ``g_loss``
        (and its AC-GAN part ``g_loss_ac``). ``reals``: the micro-batches of real images the fakes are
        paired with, read only by a loss that needs them (``rpgan``; the step's last D batch)."""
        A = self.cfg.train.grad_accum
        self.opt_G.zero_grad(set_to_none=True)
        self.D_raw.requires_grad_(False)
        totals: dict[str, torch.Tensor] = {}
        try:
            for m, (z, y_fake) in enumerate(self.micro_latents(gen)):
                with self._sync(self.G, last=m == A - 1), self._micro(m):
                    if self.loss.g_reads_real:
                        logits, classes, real_logits = self._paired_g_logits(self.G(z, y_fake), y_fake, reals[m],
                                                                             step, m)
                        parts = {"g_loss": self.loss.g(logits, real_logits)}
                    else:
                        seen = self._augment(self.G(z, y_fake), step, 0, m)
                        logits, classes = self._d_out(self.D_gstep, seen, y_fake)
                        parts = {"g_loss": self.loss.g(logits)}
                    if self.cfg.train.ortho_reg:  # BigGAN's orthogonal regularisation (issue 29), a G loss part
                        parts["g_loss_ortho"] = self.cfg.train.ortho_reg / 2 * orthogonal_penalty(self.G_raw)
                        parts["g_loss"] = parts["g_loss"] + parts["g_loss_ortho"]
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

    def _paired_g_logits(self, fake, y_fake, real, step: int, m: int):
        """G's step of a loss that reads real logits: D (frozen) on the concatenation of the paired real
        micro-batch and the fakes, one call as in the D step; returns (fake logits, fake class logits,
        real logits)."""
        x = real[0].to(self.device, non_blocking=True, memory_format=self.memory_format)
        y = real[1].to(self.device, non_blocking=True)
        seen = self._augment(torch.cat([x, fake.to(x.dtype)]), step, 0, m)
        logits, classes = self._d_out(self.D_gstep, seen, torch.cat([y, y_fake]))
        real_logits, logits = logits.split([len(x), len(fake)])
        return logits, (classes[len(x):] if classes is not None else None), real_logits.detach()

    def __call__(self, step: int, next_batches: Callable[[], Batches],
                 images_seen: int | None = None) -> dict[str, torch.Tensor]:
        """G step number ``step`` (1-based): D updates on ``train.d_steps`` global batches from
        ``next_batches``, one G update, the EMA update. Returns the step's statistics (on the device: no
        host sync here), D's averaged over its updates. ``images_seen``: real images shown to D before this
        step, the schedules' position (default: ``(step - 1) * d_steps * batch_size``)."""
        if not self._prepared:
            self.prepare()
        t = self.cfg.train
        per_step = t.d_steps * t.batch_size
        images_seen = (step - 1) * per_step if images_seen is None else images_seen
        if self._moving:
            self.set_hyperparameters(images_seen)
        stats: dict[str, torch.Tensor] = {}
        with batch_norm_synchronised(self.bn_group):
            for k in range(t.d_steps):
                batches = next_batches()
                for key, v in self.d_update(batches, self.phase_generator(step, 1 + k), step, 1 + k).items():
                    stats[key] = stats.get(key, 0) + v / t.d_steps
            stats.update(self.g_update(self.phase_generator(step, 0), step, batches))
        self.augment.end_step(step)
        if self.ema is not None and not self.acc.optimizer_step_was_skipped:
            self.ema.update(step)
        if self._moving:  # the next step's values already: what a checkpoint written now stores
            used = self.hyper
            self.set_hyperparameters(images_seen + per_step)
            self.hyper = used  # (the logs report what this step used)
        return stats

    def sample_generator(self) -> torch.nn.Module:
        """What grids and evaluations sample from: the EMA generator (BN statistics for its own weights), else
        G itself. Every process calls it at the same step (the refresh synchronises under train.sync_bn)."""
        return self.ema.refresh() if self.ema is not None else self.G_raw

    def grad_norms(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.grad_norm_tensors().items()}

    def grad_norm_tensors(self) -> dict[str, torch.Tensor]:
        """G's and D's gradient norms after this step's last updates, on the device (no host sync)."""
        return {"G": grad_norm(self.G_raw.parameters()), "D": grad_norm(self.D_raw.parameters())}

    def weights_finite(self) -> bool:
        flags = [torch.isfinite(p).all() for m in (self.G_raw, self.D_raw) for p in m.parameters()]
        ok = torch.stack(flags).all().float()
        return bool(self.acc.reduce(ok, "sum") == self.world) if self.world > 1 else bool(ok)
