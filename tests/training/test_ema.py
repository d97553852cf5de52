"""The EMA generator's batch-norm statistics fit its averaged weights (issue 26): after an early
``train.ema_start`` in a short real run, the checkpoint's EMA with its stored statistics draws what the
same weights draw with statistics recomputed for them; before the fix it drew with G's statistics, the
washed-out or near-white grids. Plus the notes that name --no-ema / --bn-stats standing."""

from __future__ import annotations

import copy

import pytest
import torch
from click.testing import CliRunner

from sagan.checkpoint import load_generator
from sagan.config import load_config
from sagan.models import Generator
from sagan.sampling.bn_stats import prepare_generator
from sagan.sampling.draw import generate
from sagan.sampling.ema_check import averaging_note, samples_differ_note
from sagan.training import train
from sagan.training.ema import EMA

SHORT_RUN = ["model.g_ch=16", "model.d_ch=16", "data.demo_size=64", "train.batch_size=8", "train.num_workers=0",
             "train.max_steps=30", "train.ema_start=5", "train.ema_decay=0.9", "train.sample_every=1000",
             "train.checkpoint_every=1000", "train.log_every=1000"]


def _images(G, bn_stats: str, seed: int = 0) -> torch.Tensor:
    """64 images in [-1, 1] of a copy of G on fixed latents, with the BN statistics of ``bn_stats``."""
    G = prepare_generator(copy.deepcopy(G), bn_stats, batch_size=64, standing_batches=16, seed=seed)
    z = torch.randn(64, G.z_dim, generator=torch.Generator().manual_seed(7))
    return torch.cat([b for b, _ in generate(G, z, torch.arange(64) % 10)]).float() / 127.5 - 1


@pytest.fixture(scope="module")
def early_ema_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ema") / "run"
    train(load_config("demo", overrides=SHORT_RUN), outdir=out, progress=False)
    return out


def test_ema_checkpoint_draws_with_bn_statistics_of_its_own_weights_after_an_early_start(early_ema_run):
    """The stored statistics are as close to freshly recomputed standing statistics as two standing
    estimates are to each other (with G's statistics, as before, they were ~7x further off)."""
    G_ema, G = load_generator(early_ema_run, ema=True)[0], load_generator(early_ema_run, ema=False)[0]
    stored = _images(G_ema, "running")
    standing_a, standing_b = _images(G_ema, "standing", seed=1), _images(G_ema, "standing", seed=2)
    noise = float((standing_a - standing_b).abs().mean())
    assert float((stored - standing_a).abs().mean()) <= 3 * noise
    # not vacuous: the EMA is not G (its weights are an average of 26 steps)
    assert float((stored - _images(G, "running")).abs().mean()) > 3 * noise


def test_refresh_before_ema_start_keeps_gs_statistics_and_never_feeds_back_into_training(tiny_cfg):
    G = Generator.from_config(tiny_cfg)
    ema = EMA(G, decay=0.9, start=3, standing_batches=2, standing_batch_size=4)

    def perturb():
        with torch.no_grad():
            for p in G.parameters():
                p.add_(0.1 * torch.randn_like(p))
        G(torch.randn(4, G.z_dim), torch.arange(4))  # train mode: BN statistics move

    for step in (1, 2):  # the copy is G: G's statistics fit it, nothing recomputed
        perturb()
        ema.update(step)
        ema.refresh()
        assert all(torch.equal(e, g) for e, g in zip(ema.ema.state_dict().values(), G.state_dict().values()))
    perturb()
    ema.update(3)
    G_buffers = dict(G.named_buffers())
    refreshed = {k: v.clone() for k, v in ema.refresh().named_buffers()}
    assert not torch.equal(refreshed["out_bn.running_mean"], G_buffers["out_bn.running_mean"])
    assert all(torch.equal(refreshed[k], G_buffers[k]) for k in refreshed if k.endswith(("_u", "_v")))  # SN stays G's
    again = {k: v.clone() for k, v in ema.refresh().named_buffers()}
    assert all(torch.equal(again[k], refreshed[k]) for k in again)  # once per update, the same latents
    ema.update(4)  # the next update copies G's buffers again: training never sees the refresh
    assert all(torch.equal(b, G_buffers[k]) for k, b in ema.ema.named_buffers())


def test_ema_standing_batches_0_keeps_gs_statistics_as_before(tiny_cfg):
    G = Generator.from_config(tiny_cfg)
    ema = EMA(G, decay=0.9, start=1, standing_batches=0)
    G(torch.randn(4, G.z_dim), torch.arange(4))
    ema.update(1)
    assert all(torch.equal(b, dict(G.named_buffers())[k]) for k, b in ema.refresh().named_buffers())


def test_a_young_average_is_noted_with_its_share_of_old_weights():
    assert averaging_note(step=99, decay=0.99, start=100) is None  # before the start: the copy is G
    note = averaging_note(step=187, decay=0.99, start=100)
    assert "averaged 88 steps" in note and "1/(1 - ema_decay) = 100" in note and "41% of the weights of step 100" in note
    assert averaging_note(step=199, decay=0.99, start=100) is None  # 100 steps: a settled average


def test_wildly_different_ema_and_raw_samples_are_noted_naming_the_remedies():
    raw = torch.rand(8, 3, 4, 4) * 2 - 1
    assert samples_differ_note(raw * 0.9 + 0.05, raw) is None  # an EMA that draws much the same
    white = torch.full_like(raw, 0.97)
    note = samples_differ_note(white, raw)
    assert "--bn-stats standing" in note and "--no-ema" in note


def test_sample_py_notes_a_checkpoint_whose_ema_draws_unlike_g(tmp_path):
    """A checkpoint written before the fix: the EMA's BN buffers are G's while its weights are another
    network's; sample.py says so in one line and names the remedies."""
    from sagan.checkpoint import save_checkpoint
    from sagan.models import Discriminator
    from sagan.commands.sample import main as sample_cli

    cfg = load_config("demo", overrides=["model.g_ch=16", "model.d_ch=16", "train.ema_start=100",
                                         "train.ema_decay=0.99"])
    G, G_ema = Generator.from_config(cfg), Generator.from_config(cfg)
    with torch.no_grad():
        G(torch.randn(16, G.z_dim), torch.arange(16) % 10)
        G_ema.out_conv.parametrizations.weight.original.mul_(-1)  # another network, G's statistics
        G_ema.out_conv.bias.fill_(3.0)  # tanh(3) = 0.995: near-white tiles
        for name, buffer in G_ema.named_buffers():
            buffer.copy_(dict(G.named_buffers())[name])
    path = tmp_path / "old.pt"
    save_checkpoint(path, dict(step=187, config=cfg.to_dict(), G=G.state_dict(), D=Discriminator.from_config(cfg)
                               .state_dict(), G_ema=G_ema.state_dict(), opt_G=None, opt_D=None, rng=None, data=None,
                               class_names=None, meta={}))
    r = CliRunner().invoke(sample_cli, ["--checkpoint", str(path), "--out", str(tmp_path / "grid.png")])
    assert r.exit_code == 0, r.output
    notes = [line for line in r.stderr.splitlines() if line.startswith("note:")]
    assert any("averaged 88 steps" in n for n in notes), r.stderr
    assert any("differ wildly" in n and "--bn-stats standing" in n for n in notes), r.stderr
    quiet = CliRunner().invoke(sample_cli, ["--checkpoint", str(path), "--out", str(tmp_path / "raw.png"), "--no-ema"])
    assert quiet.exit_code == 0 and "differ wildly" not in quiet.stderr
