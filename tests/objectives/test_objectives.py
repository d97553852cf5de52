"""Today's objectives on SAGAN's networks (issue 28): the R1 / R2 gradient penalties against explicit
autograd computations on sagan's own D (spectral norm, attention), the penalties inside the training step
(before the augmentation), lazy regularisation and Adam's correction, the cosine schedules, rpgan's
pairing in G's step, config validation and exact resume."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from conftest import assert_same_state, straight_and_resumed
from gan_step_utils import build_step, tiny
from sagan.config import load_config
from sagan.errors import ConfigError
from sagan.models import Discriminator
from sagan.training import objective
from sagan.training.regularisers import input_gradient_norms, math_attention, squared_gradient_norms


def sagan_d(cfg=None) -> torch.nn.Module:
    """sagan's D (spectral norm, self-attention at 16px, projection) in float64, eval mode (fixed SN u/v)."""
    cfg = cfg or tiny()
    assert cfg.model.d_attn == (16,)
    return Discriminator.from_config(cfg).double().eval()


def explicit_norms(D, x, y) -> torch.Tensor:
    """||grad_x D(x_i)||^2 image by image: one D call and one autograd.grad per image, summed over C·H·W."""
    out = []
    for i in range(len(x)):
        xi = x[i:i + 1].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(D(xi, y[i:i + 1]).sum(), xi)
        out.append((g ** 2).sum())
    return torch.stack(out)


# --------------------------------------------------------------------------------------------------
# the norms


def test_input_gradient_norms_equal_an_image_by_image_autograd_computation_on_sagans_d():
    D = sagan_d()
    x, y = torch.randn(4, 3, 32, 32, dtype=torch.float64), torch.tensor([0, 3, 3, 9])
    norms = input_gradient_norms(D, x, y)
    assert norms.shape == (4,) and norms.dtype == torch.float64
    torch.testing.assert_close(norms, explicit_norms(D, x, y), rtol=1e-10, atol=0)
    assert len(set(norms.tolist())) == 4  # one value per image, not a batch mean


def test_penalty_weight_gradient_equals_the_straightforward_formulation():
    """The image-only first backward (no weight gradients) gives the same penalty gradient on D's weights
    as autograd through the weights too, and accumulates nothing into any .grad on the way."""
    D = sagan_d()
    x, y = torch.randn(3, 3, 32, 32, dtype=torch.float64), torch.tensor([1, 2, 5])
    norms = input_gradient_norms(D, x, y)
    assert all(p.grad is None for p in D.parameters())
    ours = torch.autograd.grad(norms.mean(), list(D.parameters()), allow_unused=True)
    xr = x.clone().requires_grad_(True)
    params = list(D.parameters())
    with math_attention():  # the fused attention kernels have no double backward
        logits = D(xr, y)
    grads = torch.autograd.grad(logits.sum(), [xr, *params], create_graph=True, allow_unused=True)
    straight = torch.autograd.grad((grads[0] ** 2).flatten(1).sum(1).mean(), params, allow_unused=True)
    pairs = [(a, b) for a, b in zip(ours, straight) if a is not None or b is not None]
    assert pairs and all(a is not None and b is not None for a, b in pairs)
    for a, b in pairs:
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_penalty_flows_through_the_augmentation():
    """Taken before augmentation: with x -> 2x, the gradient w.r.t. x is 2 D'(2x), the norm 4 ||D'(2x)||^2."""
    D = sagan_d()
    x, y = torch.randn(2, 3, 32, 32, dtype=torch.float64), torch.tensor([4, 7])
    through = input_gradient_norms(D, x, y, augment=lambda v: 2 * v)
    torch.testing.assert_close(through, 4 * input_gradient_norms(D, 2 * x, y), rtol=1e-10, atol=0)


def test_norms_are_fp32_under_bf16_autocast():
    D = Discriminator.from_config(tiny()).eval()
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 2])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        norms = input_gradient_norms(D, x, y)
    assert norms.dtype == torch.float32 and torch.isfinite(norms).all()
    assert squared_gradient_norms(D(x.requires_grad_(), y).bfloat16(), [x])[0].dtype == torch.float32


# --------------------------------------------------------------------------------------------------
# the penalties in the training step


def by_hand_penalties(step, D0, batch, s: int, phase: int):
    """d_loss_r1 / d_loss_r2 of one micro-batch by hand: (gamma / 2) * mean of input_gradient_norms on D from
    before the update, through the step's own augmentation of (real, fake) with its seeded generator."""
    (x, y), = batch
    z, y_fake = step.micro_latents(step.phase_generator(s, phase))[0]
    with torch.no_grad():
        fake = step.G_raw(z, y_fake)
    images, labels = torch.cat([x, fake]), torch.cat([y, y_fake])
    norms = input_gradient_norms(D0, images, labels, augment=lambda v: step._augment(v, s, phase, 0))
    t = step.cfg.train
    return t.r1_gamma / 2 * norms[:len(x)].mean(), t.r2_gamma / 2 * norms[len(x):].mean()


@pytest.mark.parametrize("augment", ["none", "diffaugment"])
def test_r1_and_r2_parts_of_the_d_update_by_hand(augment):
    cfg = tiny("train.loss=rpgan", "train.r1_gamma=3", "train.r2_gamma=0.5", f"train.augment={augment}")
    step, stream = build_step(cfg)
    step.prepare()
    step.G_raw.eval(), step.D_raw.eval()
    D0 = copy.deepcopy(step.D_raw)
    batch = stream.next()
    stats = step.d_update(batch, step.phase_generator(1, 1), 1, 1)
    r1, r2 = by_hand_penalties(step, D0, batch, 1, 1)
    assert r1 > 0 and r2 > 0
    torch.testing.assert_close(stats["d_loss_r1"], r1, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(stats["d_loss_r2"], r2, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(stats["d_loss"], stats["d_loss_pair"] + r1 + r2, rtol=1e-5, atol=1e-6)
    assert step.opt_D.state_dict()["state"][0]["step"] == 1  # joined into the update: no extra Adam step


def test_d_weight_gradient_of_the_penalised_update_is_counted_once():
    """The gradient the D update leaves on D's weights equals autograd of loss + (gamma/2)(R1 + R2) by hand:
    the penalty's first backward adds nothing to the weights' .grad (no double counting)."""
    cfg = tiny("train.loss=rpgan", "train.r1_gamma=3", "train.r2_gamma=0.5")
    step, stream = build_step(cfg)
    step.prepare()
    step.G_raw.eval(), step.D_raw.eval()
    D0 = copy.deepcopy(step.D_raw)
    batch = stream.next()
    step.d_update(batch, step.phase_generator(1, 1), 1, 1)  # the gradients stay on the parameters after Adam
    (x, y), = batch
    z, y_fake = step.micro_latents(step.phase_generator(1, 1))[0]
    with torch.no_grad():
        fake = step.G_raw(z, y_fake)
    images, labels = torch.cat([x, fake]), torch.cat([y, y_fake])
    logits = D0(images, labels)
    norms = input_gradient_norms(D0, images, labels)
    total = (step.loss.d_loss(logits[:8], logits[8:])[0] + 1.5 * norms[:8].mean() + 0.25 * norms[8:].mean())
    params = [p for p in D0.parameters()]
    expected = torch.autograd.grad(total, params, allow_unused=True, retain_graph=True)
    penalty = torch.autograd.grad(1.5 * norms[:8].mean() + 0.25 * norms[8:].mean(), params, allow_unused=True)
    got = [p.grad for p in step.D_raw.parameters()]
    assert sum(e is not None for e in expected) > 10
    flat = lambda gs: torch.cat([g.flatten() for g in gs if g is not None])  # noqa: E731
    # control: the penalty's share is far above the tolerance (counting it twice would fail)
    assert flat(penalty).norm() > 0.05 * flat(expected).norm()
    for e, g in zip(expected, got):
        if e is not None:
            torch.testing.assert_close(g, e, rtol=1e-3, atol=1e-6)


def test_lazy_regularisation_scales_by_the_interval_and_corrects_adam():
    k = 4
    cfg = tiny("train.loss=ns", "train.r1_gamma=2", f"train.reg_interval={k}", "train.beta1=0.5", "train.beta2=0.99")
    step, stream = build_step(cfg)
    # StyleGAN2: k D updates make k + 1 Adam steps, hence lr x k/(k+1) and betas ^ (k/(k+1)), for D only
    d, g = step.opt_D.param_groups[0], step.opt_G.param_groups[0]
    assert d["lr"] == pytest.approx(cfg.train.lr_d * k / (k + 1))
    assert d["betas"] == pytest.approx((0.5 ** (k / (k + 1)), 0.99 ** (k / (k + 1))))
    assert g["lr"] == cfg.train.lr_g and g["betas"] == (0.5, 0.99)
    step.prepare()
    step.G_raw.eval(), step.D_raw.eval()
    seen = []
    for update in range(k + 1):  # updates 0 and k regularise, 1..k-1 do not
        stats = step.d_update(stream.next(), step.phase_generator(1 + update, 1), 1 + update, 1, update=update)
        seen.append(float(stats["d_loss_r1"]))
    assert seen[0] > 0 and seen[k] > 0 and all(v == 0 for v in seen[1:k])  # logged as 0 between penalty updates
    assert step.opt_D.state_dict()["state"][0]["step"] == k + 1 + 2  # k + 1 main updates, 2 penalty updates


def test_lazy_penalty_update_is_the_interval_times_the_penalty_at_the_updated_d():
    """The lazy update's d_loss_r1 is k * (gamma / 2) * mean norms at D as the main update left it (exactly)."""
    k = 3
    cfg = tiny("train.loss=hinge", "train.r1_gamma=2", "train.r2_gamma=1", f"train.reg_interval={k}")
    step, stream = build_step(cfg)
    step.prepare()
    step.G_raw.eval(), step.D_raw.eval()
    batch = stream.next()
    captured = {}
    main_update = step.opt_D.step

    def spy():
        main_update()
        captured.setdefault("D", copy.deepcopy(step.D_raw))  # D after the main update, before the lazy one

    step.opt_D.step = spy
    stats = step.d_update(batch, step.phase_generator(1, 1), 1, 1, update=0)
    r1, r2 = by_hand_penalties(step, captured["D"], batch, 1, 1)
    torch.testing.assert_close(stats["d_loss_r1"], k * r1, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(stats["d_loss_r2"], k * r2, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("overrides", [[], ["train.reg_interval=4"], ["train.r1_gamma=1"]])
def test_adam_is_left_as_configured_without_a_lazy_penalty(overrides):
    cfg = tiny(*overrides)
    step, _ = build_step(cfg)
    for opt, lr in ((step.opt_D, cfg.train.lr_d), (step.opt_G, cfg.train.lr_g)):
        assert opt.param_groups[0]["lr"] == lr and opt.param_groups[0]["betas"] == (cfg.train.beta1, cfg.train.beta2)
    if "train.r1_gamma=1" in overrides:  # a penalty: its gamma and the (unchanged) settings are logged
        assert step.log_values() == {"lr/G": cfg.train.lr_g, "lr/D": cfg.train.lr_d, "objective/beta2": 0.9,
                                     "objective/r1_gamma": 1.0}
    else:
        assert step.log_values() == {}


# --------------------------------------------------------------------------------------------------
# schedules


def test_cosine_schedule_at_start_middle_and_end():
    """R3GAN's CIFAR-10 burn-in: gamma 0.05 -> 0.005, lr 2e-4 -> 5e-5, beta2 0.9 -> 0.99 over 20,000 kimg."""
    t = tiny("train.r1_gamma=0.05", "train.r1_gamma_end=0.005", "train.lr_g=2e-4", "train.lr_g_end=5e-5",
             "train.beta2=0.9", "train.beta2_end=0.99", "train.schedule_kimg=20000").train
    start, middle, quarter = (objective.values_at(t, n) for n in (0, 10_000_000, 5_000_000))
    end, beyond = objective.values_at(t, 20_000_000), objective.values_at(t, 50_000_000)
    assert (start["r1_gamma"], start["lr_g"], start["beta2"]) == (0.05, 2e-4, 0.9)
    assert middle["r1_gamma"] == pytest.approx(0.0275) and middle["lr_g"] == pytest.approx(1.25e-4)
    assert middle["beta2"] == pytest.approx(0.945)
    w = (1 + math.cos(math.pi / 4)) / 2  # a quarter of the way: weight of the start value
    assert quarter["r1_gamma"] == pytest.approx(0.005 + w * 0.045)
    for v in (end, beyond):
        assert (v["r1_gamma"], v["lr_g"], v["beta2"]) == pytest.approx((0.005, 5e-5, 0.99))
    # unscheduled keys stay exactly as configured
    assert middle["lr_d"] == t.lr_d and middle["r2_gamma"] == 0.0


def test_the_schedule_drives_the_step_from_the_images_seen():
    cfg = tiny("train.loss=rpgan", "train.r1_gamma=1", "train.r1_gamma_end=0.1", "train.lr_d_end=1e-4",
               "train.beta2_end=0.99", "train.schedule_kimg=0.016")  # 16 images: 2 steps of 8
    step, stream = build_step(cfg)
    step(1, stream.next)  # position 0: the start values in use; the next step's (half-way) already set
    assert step.log_values()["objective/r1_gamma"] == 1.0 and step.log_values()["lr/D"] == cfg.train.lr_d
    half = objective.values_at(cfg.train, 8)
    assert step.opt_D.param_groups[0]["lr"] == pytest.approx(half["lr_d"]) == pytest.approx((4e-4 + 1e-4) / 2)
    stats = step(2, stream.next)
    assert step.log_values()["objective/r1_gamma"] == pytest.approx(0.55)
    assert step.opt_D.param_groups[0]["betas"][1] == pytest.approx(0.99)  # step 3 at the end of the schedule
    assert "d_loss_r1" in stats and "d_loss_r2" not in stats


# --------------------------------------------------------------------------------------------------
# rpgan in G's step


def test_rpgan_g_step_pairs_the_fakes_with_the_last_d_batch_and_other_losses_skip_the_reals():
    for loss, rows in (("rpgan", 16), ("hinge", 8)):
        step, stream = build_step(tiny(f"train.loss={loss}", "train.d_steps=2"))
        step.prepare()
        seen = []
        batches = []

        def next_batch():
            batches.append(stream.next())
            return batches[-1]

        def record(module, args):
            seen.append(args[0].detach().clone())

        step.d_update = lambda *a, **k: {}  # only G's step here
        handle = step.D_gstep.register_forward_pre_hook(record)
        step(1, next_batch)
        handle.remove()
        assert len(seen) == 1 and seen[0].shape[0] == rows  # no D pass on real images unless the loss reads them
        if loss == "rpgan":
            torch.testing.assert_close(seen[0][:8], batches[-1][0][0])  # the step's last D batch, row by row


def test_rpgan_g_loss_in_the_step_by_hand():
    cfg = tiny("train.loss=rpgan")
    step, stream = build_step(cfg)
    step.prepare()
    step.G_raw.eval(), step.D_raw.eval()
    batch = stream.next()
    G0, D0 = copy.deepcopy(step.G_raw), copy.deepcopy(step.D_raw)
    stats = step.g_update(step.phase_generator(1, 0), 1, batch)
    (x, y), = batch
    z, y_fake = step.micro_latents(step.phase_generator(1, 0))[0]
    with torch.no_grad():
        logits = D0(torch.cat([x, G0(z, y_fake)]), torch.cat([y, y_fake]))
    expected = torch.nn.functional.softplus(logits[:8] - logits[8:]).mean()
    torch.testing.assert_close(stats["g_loss"], expected, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# configuration and resume


@pytest.mark.parametrize("overrides, message", [
    (["train.r1_gamma=-1"], "train.r1_gamma must be >= 0"),
    (["train.r2_gamma=-0.1"], "train.r2_gamma must be >= 0"),
    (["train.reg_interval=0"], "train.reg_interval must be >= 1"),
    (["train.schedule_kimg=-5"], "train.schedule_kimg must be >= 0"),
    (["train.lr_g_end=1e-5"], "train.lr_g_end needs train.schedule_kimg > 0"),
    (["train.r1_gamma_end=0.01", "train.schedule_kimg=10"], "train.r1_gamma_end=0.01 needs train.r1_gamma > 0"),
    (["train.r1_gamma=1", "train.r1_gamma_end=-1", "train.schedule_kimg=10"], "must be >= 0"),
    (["train.lr_d_end=0", "train.schedule_kimg=10"], "train.lr_d_end must be > 0"),
    (["train.beta2_end=1", "train.schedule_kimg=10"], "train.beta2_end must be in [0, 1)"),
    (["train.r2_gamma=1", "train.compile=true"], "pytorch/pytorch#181581"),
    (["train.r1_gamma=1", "train.mixed_precision=fp16"], "use bf16 or no"),
])
def test_bad_objective_keys_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError) as e:
        tiny(*overrides)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_defaults_switch_nothing_on():
    t = load_config("demo").train
    assert (t.r1_gamma, t.r2_gamma, t.reg_interval, t.schedule_kimg) == (0.0, 0.0, 1, 0.0)
    assert all(getattr(t, f"{k}_end") is None for k in objective.SCHEDULED)
    assert not objective.penalised(t) and not objective.scheduled(t) and objective.lazy_ratio(t) == 1


def test_resume_is_bit_exact_with_penalties_lazy_interval_and_schedules(tmp_path):
    cfg = tiny("train.loss=rpgan", "train.r1_gamma=0.5", "train.r2_gamma=0.2", "train.reg_interval=3",
               "train.d_steps=2", "train.r1_gamma_end=0.05", "train.lr_g_end=5e-5", "train.lr_d_end=1e-4",
               "train.beta2_end=0.99", "train.schedule_kimg=0.064", "train.augment=diffaugment",
               "train.checkpoint_every=3", "train.ema_start=2", "data.hflip=true")
    a, b = straight_and_resumed(cfg, tmp_path, steps=6, split=3)
    assert a["step"] == b["step"] == 6 and a["data"] == b["data"]
    for key in ("G", "D", "G_ema", "opt_G", "opt_D"):
        assert_same_state(a[key], b[key], key)
    # 12 D updates, penalty updates after updates 0, 3, 6, 9: 16 Adam steps for D
    assert a["opt_D"]["state"][0]["step"] == 16
    log = (tmp_path / "split/log.txt").read_text()
    assert ("gradient penalties: R1 gamma 0.5 -> 0.05, R2 gamma 0.2, on the images before augmentation, a D "
            "update of their own after one D update in 3, times 3, D's Adam lr x 0.75 and betas ^ 0.75") in log
    assert "schedules: r1_gamma 0.5 -> 0.05, lr_g 0.0002 -> 5e-05, lr_d 0.0004 -> 0.0001, beta2 0.9 -> 0.99" in log
    # the schedule's values are not reported as the config replacing the checkpoint's
    assert "resumed at step 3" in log and "optimiser settings from the config replace" not in log


def test_cifar10_r3_preset_is_r3gans_objective_with_its_schedule_scaled_to_the_run():
    c, base = load_config("cifar10_r3"), load_config("cifar10")
    assert c.model == base.model
    assert (c.train.batch_size, c.train.d_steps) == (base.train.batch_size, base.train.d_steps)
    t = c.train
    assert (t.loss, t.r1_gamma, t.r2_gamma, t.reg_interval, t.beta1) == ("rpgan", 0.05, 0.05, 1, 0.0)
    run_kimg = t.max_steps * t.d_steps * t.batch_size / 1000
    assert t.schedule_kimg == pytest.approx(run_kimg * 20 / 250)  # R3GAN: 20 Mimg of a 250 Mimg run
    end = objective.values_at(t, int(run_kimg * 1000))
    assert end == pytest.approx({"r1_gamma": 0.005, "r2_gamma": 0.005, "lr_g": 5e-5, "lr_d": 5e-5, "beta2": 0.99})
    from sagan.config import config_chain, merge_chain

    chain = config_chain("cifar10_r3")
    inherited = merge_chain(chain[:-1])["train"]
    assert all(inherited.get(k, "<unset>") != v for k, v in chain[-1][1]["train"].items())  # states only changes


@pytest.mark.parametrize("overrides", [
    ["train.loss=wasserstein", "train.r1_gamma=1", "train.r2_gamma=1"],
    ["train.loss=rpgan", "train.r1_gamma=1", "model.d_cond=ac", "train.reg_interval=2"],
    ["train.loss=ns", "train.r1_gamma=1", "train.augment=ada", "train.grad_accum=2"],
])
def test_the_penalties_work_with_every_loss_d_and_augmentation(overrides):
    step, stream = build_step(tiny(*overrides))
    for s in (1, 2):  # (with reg_interval 2 the penalty update follows step 1's D update, not step 2's)
        stats = step(s, stream.next)
        assert all(torch.isfinite(v) for v in stats.values())
        parts = sum(v for k, v in stats.items() if k.startswith("d_loss_"))
        torch.testing.assert_close(stats["d_loss"], parts, rtol=1e-5, atol=1e-6)  # d_loss is the sum of its parts
        assert (stats["d_loss_r1"] > 0) == (s == 1 or "train.reg_interval=2" not in overrides)


def test_bf16_training_with_penalties_runs_and_logs_them(tmp_path):
    """R3GAN trains in bf16 (fp16 is refused with a penalty): train.py under accelerate's bf16 autocast (its own
    process: accelerate fixes the precision once per process) with rpgan + R1 + R2 logs finite positive
    penalties (the norms themselves are fp32: test_norms_are_fp32_under_bf16_autocast)."""
    import subprocess
    import sys
    from pathlib import Path

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    repo = Path(__file__).resolve().parents[2]
    sets = [a for o in ["model.g_ch=16", "model.d_ch=16", "data.demo_size=16", "train.batch_size=4",
                        "train.max_steps=2", "train.log_every=1", "train.num_workers=0", "train.loss=rpgan",
                        "train.r1_gamma=1", "train.r2_gamma=1"] for a in ("--set", o)]
    proc = subprocess.run([sys.executable, str(repo / "train.py"), "--no-progress", *sets, "--mixed-precision", "bf16",
                           "--outdir", str(tmp_path / "run")], capture_output=True, text=True, cwd=repo, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ea = EventAccumulator(str(tmp_path / "run"))
    ea.Reload()
    for tag in ("loss/d_loss_r1", "loss/d_loss_r2"):
        values = [e.value for e in ea.Scalars(tag)]
        assert len(values) == 2 and all(0 < v < 10 for v in values), (tag, values)
