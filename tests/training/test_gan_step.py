"""The training step on its own (GANStep), the loss registry in the real loop, and the loop's options
(d_steps, grad_accum, ema off, sync_bn), checkpoint pruning after a resume from an older step."""

from __future__ import annotations

import math

import pytest
import torch

from gan_step_utils import build_step, tiny
from sagan.checkpoint import load_checkpoint, save_checkpoint
from sagan.training.losses import LOSSES, get_loss, register_loss
from sagan.models import Generator
from sagan.training import Trainer, train


def scalars(run, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run))
    ea.Reload()
    return {e.step: e.value for e in ea.Scalars(tag)}


def test_gan_step_runs_without_an_output_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tiny()
    step, stream = build_step(cfg)
    g_before = {k: v.clone() for k, v in step.G_raw.state_dict().items()}
    d_before = {k: v.clone() for k, v in step.D_raw.state_dict().items()}
    stats = step(1, stream.next)
    assert set(stats) == {"d_loss_real", "d_loss_fake", "d_loss", "g_loss", "d_logits_real", "d_logits_fake"}
    # the hinge parts: relu(1 - D(x)) >= 0, and the total is their sum
    assert stats["d_loss_real"] >= 0 and stats["d_loss_fake"] >= 0
    assert torch.allclose(stats["d_loss"], stats["d_loss_real"] + stats["d_loss_fake"])
    assert any(not torch.equal(v, g_before[k]) for k, v in step.G_raw.state_dict().items())
    assert any(not torch.equal(v, d_before[k]) for k, v in step.D_raw.state_dict().items())
    assert step.opt_D.state_dict()["state"][0]["step"] == 1 and step.opt_G.state_dict()["state"][0]["step"] == 1
    assert stream.index == cfg.train.batch_size
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_gan_step_is_deterministic_given_the_step_number():
    a, sa = build_step(tiny())
    b, sb = build_step(tiny())
    for s in (1, 2):
        ra, rb = a(s, sa.next), b(s, sb.next)
        assert all(torch.equal(ra[k], rb[k]) for k in ra)
    assert all(torch.equal(x, y) for x, y in zip(a.G_raw.state_dict().values(), b.G_raw.state_dict().values()))


@pytest.mark.parametrize("loss", ["hinge", "ns", "wasserstein"])
def test_each_registered_loss_trains_and_logs_its_parts(loss, tmp_path):
    run = train(tiny(f"train.loss={loss}", "train.max_steps=3"), outdir=tmp_path / loss, progress=False)
    real, fake = scalars(run, "loss/d_loss_real"), scalars(run, "loss/d_loss_fake")
    total, g = scalars(run, "loss/d_loss"), scalars(run, "loss/g_loss")
    logits_real, logits_fake = scalars(run, "logits/real"), scalars(run, "logits/fake")
    assert sorted(real) == [1, 2, 3]
    for s in real:
        assert math.isfinite(real[s]) and math.isfinite(g[s])
        assert total[s] == pytest.approx(real[s] + fake[s], rel=1e-5, abs=1e-6)
        if loss == "wasserstein":  # -E[D(x)] and E[D(G(z))]
            assert real[s] == pytest.approx(-logits_real[s], rel=1e-5, abs=1e-6)
            assert fake[s] == pytest.approx(logits_fake[s], rel=1e-5, abs=1e-6)
        elif loss == "ns":  # softplus terms are positive
            assert real[s] > 0 and fake[s] > 0 and g[s] > 0
        else:
            assert real[s] >= 0 and fake[s] >= 0
    assert f"loss {loss}" in (run / "log.txt").read_text()


@pytest.fixture
def scratch_losses():
    """Losses registered in a test end with it (the registry stays clean for other tests)."""
    with LOSSES.scratch():
        yield


def test_a_new_loss_is_one_registration(tmp_path, scratch_losses):
    register_loss("least_squares", lambda r, f: {"d_loss_real": ((r - 1) ** 2).mean(), "d_loss_fake": (f ** 2).mean()},
                  lambda f: ((f - 1) ** 2).mean(), "LSGAN")
    assert get_loss("least_squares").description == "LSGAN"
    run = train(tiny("train.loss=least_squares", "train.max_steps=2"), outdir=tmp_path / "ls", progress=False)
    assert sorted(scalars(run, "loss/d_loss_real")) == [1, 2]


def test_d_steps_two_uses_two_batches_and_two_d_updates_per_step():
    step, stream = build_step(tiny("train.d_steps=2"))
    for s in (1, 2, 3):
        step(s, stream.next)
    assert step.opt_D.state_dict()["state"][0]["step"] == 6 and step.opt_G.state_dict()["state"][0]["step"] == 3
    assert stream.index == 6 * 8


def test_grad_accum_two_makes_one_update_from_two_micro_batches(tmp_path):
    """In the loop, with d_steps 2: one optimiser step per update, and what the checkpoint counts."""
    run = train(tiny("train.grad_accum=2", "train.d_steps=2", "train.max_steps=3", "train.checkpoint_every=3"),
                outdir=tmp_path / "r", progress=False)
    ckpt = load_checkpoint(run)
    assert ckpt["opt_D"]["state"][0]["step"] == 6 and ckpt["opt_G"]["state"][0]["step"] == 3
    assert ckpt["data"]["index"] == 6 * 8 and ckpt["meta"]["images_seen"] == 6 * 8
    assert "global batch 8 = 4 x 1 process(es) x 2 accumulation" in (run / "log.txt").read_text()


class FixedLatents:
    """Stands in for GANStep._latents: hands out the rows of one fixed draw in order."""

    def __init__(self, z: torch.Tensor, y: torch.Tensor):
        self.z, self.y, self.i = z, y, 0

    def __call__(self, gen, n):
        rows = slice(self.i, self.i + n)
        self.i += n
        return self.z[rows], self.y[rows]


def test_grad_accum_averages_gradients_like_one_big_batch():
    """Accumulating two half batches gives the full batch's D gradient (same images, same fakes). Eval mode
    fixes what legitimately differs between the two: G's batch statistics (BN over 8 vs 4 images) and D's
    power iteration (one more SN update before the second micro-batch). In float64: the two sum the same
    terms in another order, and in float32 that order alone moves single elements past the tolerance with
    the thread count (1.8e-6 at one thread), which is no property of accumulation."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        grads = _accumulated_and_full_batch_d_grads()
    finally:
        torch.set_default_dtype(default)
    assert grads[0].dtype == torch.float64 and grads[0].abs().max() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def _accumulated_and_full_batch_d_grads() -> list[torch.Tensor]:
    x, y = torch.randn(8, 3, 32, 32), torch.arange(8) % 10
    z, y_fake = torch.randn(8, 64), (torch.arange(8) + 3) % 10
    grads = []
    for accum, batches in ((1, [(x, y)]), (2, [(x[:4], y[:4]), (x[4:], y[4:])])):
        step, _ = build_step(tiny(f"train.grad_accum={accum}"))
        step.prepare()
        step._latents = FixedLatents(z, y_fake)
        step.G_raw.eval(), step.D_raw.eval()
        step.d_update(batches, torch.Generator())  # the gradients stay on the parameters after Adam's step
        grads.append(torch.cat([p.grad.flatten() for p in step.D_raw.parameters() if p.grad is not None]))
    return grads


def test_ema_off_samples_from_g_and_stores_no_ema(tmp_path):
    run = train(tiny("train.ema=false", "train.max_steps=2", "train.sample_every=2"), outdir=tmp_path / "r",
                progress=False)
    ckpt = load_checkpoint(run)
    assert ckpt["G_ema"] is None
    assert (run / "samples" / "step_0000002.png").is_file()
    from sagan.models import load_generator

    _, _, loaded = load_generator(run)
    assert loaded["used_ema"] is False


def test_sync_bn_on_one_process_keeps_plain_batch_norm(tmp_path):
    trainer = Trainer(tiny("train.sync_bn=true", "train.max_steps=2"), outdir=tmp_path / "r", progress=False)
    trainer.run()
    for net in (trainer.gan.G_raw, trainer.gan.ema.ema):  # the networks the loop trained and averaged
        assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in net.modules())
        assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    ckpt = load_checkpoint(trainer.outdir)
    G = Generator.from_config(tiny())
    G.load_state_dict(ckpt["G"])  # the state dict of a plain (non-Sync) generator


def test_resume_from_an_older_step_drops_the_abandoned_branch(tmp_path):
    cfg = tiny("train.checkpoint_every=2", "train.keep_checkpoints=5")
    run = train(cfg.replace(train={"max_steps": 6}), outdir=tmp_path / "r", progress=False)
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("step_*.pt")) == ["step_0000002.pt", "step_0000004.pt", "step_0000006.pt"]
    best = load_checkpoint(ckpts / "step_0000006.pt")  # pretend step 6 was the best one
    save_checkpoint(ckpts / "best.pt", {k: v for k, v in best.items() if k not in ("path", "format", "version")})
    train(cfg.replace(train={"max_steps": 3}), resume=ckpts / "step_0000002.pt", progress=False)
    names = sorted(p.name for p in ckpts.iterdir())
    assert names == ["abandoned_best_step_0000006.pt", "last.pt", "step_0000002.pt", "step_0000003.pt"]
    assert load_checkpoint(run)["step"] == 3
    log = (run / "log.txt").read_text()
    assert "removed step_0000004.pt" in log and "renamed best.pt (step 6)" in log


def test_dropping_an_abandoned_branch_points_last_at_the_resumed_checkpoint(tmp_path):
    from sagan.io import link_atomic
    from sagan.training.lineage import Reconciliation

    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    for step in (2, 4):
        save_checkpoint(ckpts / f"step_{step:07d}.pt", {"step": step})
    link_atomic(ckpts / "step_0000004.pt", ckpts / "last.pt")
    done = Reconciliation(ckpts, 2, None, None, ckpts / "step_0000002.pt").checkpoints()
    assert "removed step_0000004.pt" in done and "last.pt now points at step 2" in done
    assert torch.load(ckpts / "last.pt", weights_only=True)["step"] == 2
    # the newest checkpoint of the branch left is kept, the others are removed
    assert sorted(p.name for p in ckpts.iterdir()) == ["abandoned_last_step_0000004.pt", "last.pt", "step_0000002.pt"]
    assert torch.load(ckpts / "abandoned_last_step_0000004.pt", weights_only=True)["step"] == 4
