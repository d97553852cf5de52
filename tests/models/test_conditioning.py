"""Unconditional models (``model.num_classes: 0``) and the AC-GAN discriminator (``model.d_cond: ac``):
the networks, the training step's losses, and the whole path (training with in-training evaluation,
sample.py's grids and sets, evaluate.py) on an unconditional model."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from sagan.config import load_config
from sagan.errors import ConfigError
from sagan.models import Discriminator, Generator

TINY = ["model.g_ch=16", "model.d_ch=16"]


def tiny(*overrides: str):
    return load_config("demo", overrides=TINY + list(overrides))


def test_unconditional_generator_has_plain_batch_norms_and_ignores_labels():
    G = Generator.from_config(tiny("model.num_classes=0"))
    keys = G.state_dict().keys()
    assert not any(".gain." in k or ".bias.weight" in k and ".bn" in k and "embed" in k for k in keys)
    assert {"blocks.0.bn1.weight", "blocks.0.bn1.bias", "blocks.0.bn1.running_mean"} <= set(keys)
    assert not any("gain" in k for k in keys)  # no class tables
    G.eval()
    z = torch.randn(3, G.z_dim)
    with torch.no_grad():
        a, b, c = G(z, torch.zeros(3, dtype=torch.long)), G(z, torch.tensor([4, 5, 6])), G(z)
    assert torch.equal(a, b) and torch.equal(a, c)


def test_unconditional_discriminator_has_no_projection_term():
    D = Discriminator.from_config(tiny("model.num_classes=0"))
    assert not any(k.startswith("embed") for k in D.state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(D.eval()(x, torch.tensor([0, 1])), D(x))


def test_ac_discriminator_has_a_classifier_head_instead_of_the_projection():
    cfg = tiny("model.d_cond=ac")
    D = Discriminator.from_config(cfg).eval()
    keys = set(D.state_dict())
    assert "classifier.parametrizations.weight.original" in keys and not any(k.startswith("embed") for k in keys)
    assert D.classifier.parametrizations.weight.original.shape == (10, D.linear.in_features)
    x = torch.randn(4, 3, 32, 32)
    logits, classes = D(x, torch.arange(4), return_classes=True)
    assert logits.shape == (4,) and classes.shape == (4, 10)
    assert torch.equal(D(x, torch.zeros(4, dtype=torch.long)), D(x, torch.arange(4)))  # the label is not an input
    # a projection D answers return_classes with None
    _, none = Discriminator.from_config(tiny()).eval()(x, torch.arange(4), return_classes=True)
    assert none is None


@pytest.mark.parametrize("overrides, match", [
    (["model.num_classes=0", "model.d_cond=ac"], "model.d_cond: ac needs classes"),
    (["model.num_classes=0", "model.hierarchical_z=true"], "model.hierarchical_z needs classes"),
    (["model.d_cond=projecton"], "model.d_cond must be one of projection, ac"),
    (["model.num_classes=-1"], "model.num_classes must be >= 0"),
])
def test_bad_conditioning_settings_are_one_line_errors(overrides, match):
    with pytest.raises(ConfigError, match=match):
        tiny(*overrides)


class FixedLatents:
    def __init__(self, z, y):
        self.z, self.y, self.i = z, y, 0

    def __call__(self, gen, n):
        rows = slice(self.i, self.i + n)
        self.i += n
        return self.z[rows], self.y[rows]


def _step(cfg):
    from accelerate import Accelerator

    from sagan.training.step import GANStep

    torch.manual_seed(0)
    return GANStep(cfg, Generator.from_config(cfg), Discriminator.from_config(cfg), Accelerator(cpu=True)).prepare()


def test_ac_gan_step_adds_the_classifier_cross_entropy_to_both_losses():
    """D: hinge + CE on the real labels + CE on the fake labels; G: its hinge term + CE on the fake labels
    (Odena et al. 2017), logged as loss parts. Checked against cross-entropies computed here."""
    cfg = tiny("model.d_cond=ac", "train.batch_size=8")
    step = _step(cfg)
    x, y = torch.randn(8, 3, 32, 32), torch.arange(8) % 10
    z, y_fake = torch.randn(16, cfg.model.z_dim), (torch.arange(16) + 3) % 10
    step._latents = FixedLatents(z, y_fake)
    D0, G0 = copy.deepcopy(step.D_raw), copy.deepcopy(step.G_raw)
    parts = step.d_update([(x, y)], torch.Generator())
    assert set(parts) >= {"d_loss_real", "d_loss_fake", "d_loss_ac_real", "d_loss_ac_fake", "d_loss"}
    with torch.no_grad():
        fake = G0(z[:8], y_fake[:8])
        _, classes = D0(torch.cat([x, fake]), torch.cat([y, y_fake[:8]]), return_classes=True)
    torch.testing.assert_close(parts["d_loss_ac_real"], F.cross_entropy(classes[:8], y))
    torch.testing.assert_close(parts["d_loss_ac_fake"], F.cross_entropy(classes[8:], y_fake[:8]))
    total = parts["d_loss_real"] + parts["d_loss_fake"] + parts["d_loss_ac_real"] + parts["d_loss_ac_fake"]
    torch.testing.assert_close(parts["d_loss"], total)
    assert step.D_raw.classifier.parametrizations.weight.original.grad.abs().sum() > 0

    g = step.g_update(torch.Generator())
    assert set(g) == {"g_loss", "g_loss_ac"} and g["g_loss_ac"] > 0
    D1 = copy.deepcopy(step.D_raw)  # D after its update, as G's step saw it (SN vectors included)
    with torch.no_grad():
        G0.train()
        logits, classes = D1(G0(z[8:], y_fake[8:]), y_fake[8:], return_classes=True)
    torch.testing.assert_close(g["g_loss_ac"], F.cross_entropy(classes, y_fake[8:]), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(g["g_loss"], -logits.mean() + g["g_loss_ac"], rtol=1e-4, atol=1e-5)


def test_unconditional_step_trains_with_labels_zero():
    step = _step(tiny("model.num_classes=0", "train.batch_size=8"))
    from sagan.data import open_dataset

    ds = open_dataset(None, resolution=32, demo_size=16, demo_classes=0)
    assert ds.num_classes == 10  # the demo's ten designs, labels unused
    x = torch.stack([ds[i][0] for i in range(8)])
    stats = step(1, lambda: [(x, torch.zeros(8, dtype=torch.long))])
    assert set(stats) == {"d_loss_real", "d_loss_fake", "d_loss", "g_loss", "d_logits_real", "d_logits_fake"}
    assert all(torch.isfinite(v) for v in stats.values())


# --------------------------------------------------------------------------------------------------
# the whole path on an unconditional model


@pytest.fixture(scope="module")
def uncond_run(tmp_path_factory, demo_ref, inception_weights_file):
    from conftest import TINY_TRAIN

    from sagan.training import train

    out = tmp_path_factory.mktemp("uncond") / "run"
    cfg = load_config("demo", overrides=TINY_TRAIN + ["model.num_classes=0", "train.max_steps=2", "train.fid_every=2",
                                                      "train.checkpoint_every=2", f"data.ref_stats={demo_ref}",
                                                      "train.eval_metrics=[fid,is,kid]", "train.sample_every=2"])
    train(cfg, outdir=out, inception_weights=str(inception_weights_file), progress=False)
    return out


def test_unconditional_training_evaluates_and_draws_grids(uncond_run):
    from sagan.metrics.history import read_records

    records = read_records(uncond_run / "metrics.jsonl")
    assert [r["step"] for r in records] == [2] and set(records[0]["values"]) == {"fid", "is", "kid"}
    assert (uncond_run / "samples" / "step_0000002.png").is_file()
    log = (uncond_run / "log.txt").read_text()
    assert "unconditional (labels unused)" in log and "sample grid rows: unconditional samples" in log


def test_unconditional_in_training_intra_fid_is_refused_in_one_line(tmp_path, demo_ref, inception_weights_file):
    from conftest import TINY_TRAIN

    from sagan.errors import UserError
    from sagan.training import train

    cfg = load_config("demo", overrides=TINY_TRAIN + ["model.num_classes=0", "train.max_steps=1", "train.fid_every=1",
                                                      f"data.ref_stats={demo_ref}", "train.eval_metrics=[fid,intra_fid]"])
    with pytest.raises(UserError, match="cannot compute intra_fid: the samples have no class labels"):
        train(cfg, outdir=tmp_path / "r", inception_weights=str(inception_weights_file), progress=False)


def test_sample_py_on_an_unconditional_model(uncond_run, tmp_path):
    from PIL import Image

    from sagan.commands.sample import main

    def run(*args):
        return CliRunner().invoke(main, ["--checkpoint", str(uncond_run), *map(str, args)])

    r = run("--out", tmp_path / "grid.png", "--per-class", 3)
    assert r.exit_code == 0, r.output
    grid = Image.open(tmp_path / "grid.png")
    from sagan.sampling.viz import upscale_factor

    zoom = upscale_factor(32)
    assert grid.size[0] == 3 * (32 * zoom + 2) + 2  # no caption strip: 3 columns + 2px padding
    r = run("--out", tmp_path / "s.npz", "--num-samples", 6)
    assert r.exit_code == 0, r.output
    s = np.load(tmp_path / "s.npz")
    assert s["images"].shape == (6, 32, 32, 3) and set(s["labels"].tolist()) == {0} and len(s["class_names"]) == 0
    r = run("--out", f"{tmp_path / 'pngs'}/", "--num-samples", 4)
    assert r.exit_code == 0, r.output
    # one folder for an unconditional model (no class folders): pngs/images/000000.png ...
    assert sorted(p.name for p in (tmp_path / "pngs" / "images").iterdir()) == [f"{i:06d}.png" for i in range(4)]
    r = run("--out", f"{tmp_path / 'pngs'}/", "--num-samples", 2, "--overwrite")
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "pngs" / "images").iterdir())) == 2
    r = run("--out", tmp_path / "interp.png", "--interpolate", "--steps", 4)
    assert r.exit_code == 0, r.output
    r = run("--out", tmp_path / "x.png", "--classes", "1")
    assert r.exit_code == 2 and "this model is unconditional" in r.output


def test_evaluate_py_on_an_unconditional_model(uncond_run, demo_ref, inception_weights_file, tmp_path):
    from sagan.commands.evaluate import main

    base = ["metrics", "--ref", str(demo_ref), "--checkpoint", str(uncond_run), "--num-samples", "10", "--splits", "2",
            "--inception-weights", str(inception_weights_file), "--batch-size", "5"]
    out = tmp_path / "report.json"
    r = CliRunner().invoke(main, base + ["--out", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    assert np.isfinite(rep["fid"]) and rep["intra_fid"] is None
    assert any("intra_fid not computed: the samples have no class labels" in n for n in rep["notes"])
    r = CliRunner().invoke(main, base + ["--out", str(out), "--metrics", "fid,intra_fid"])
    assert r.exit_code == 2 and "cannot compute intra_fid: the samples have no class labels" in r.output
    assert "Traceback" not in r.output
