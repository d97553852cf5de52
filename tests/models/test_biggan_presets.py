"""The guarantees of the other presets hold for the BigGAN presets (cifar10_biggan, biggan128) at tiny widths:
export to ONNX / TorchScript / a Hugging Face folder, load_generator, sampling with BigGAN's truncation
trick, bit-exact resume (with orthogonal regularisation on), and split invariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import assert_same_state, straight_and_resumed
from export_utils import reference, write_run
from sagan.checkpoint import load_generator
from sagan.config import load_config
from sagan.export.exporter import export_checkpoint
from sagan.models import Generator

TINY_WIDTHS = {  # the presets' own layout (widths pattern, z chunks, attention) at a fraction of the width
    "cifar10_biggan": ["model.g_widths=[32,32,32,32]", "model.d_widths=[16,16,16,16]", "model.shared_dim=16"],
    "biggan128": ["model.g_ch=8", "model.d_ch=8", "model.shared_dim=16"],
}
TINY_TRAIN = ["data.demo_size=32", "train.batch_size=8", "train.num_workers=0", "train.log_every=1",
              "train.sample_every=1000", "train.checkpoint_every=2", "train.ema_start=1", "train.d_steps=1"]


def tiny(name: str, *overrides: str):
    return load_config(name, overrides=TINY_WIDTHS[name] + list(overrides))


@pytest.mark.parametrize("name", ["cifar10_biggan", pytest.param("biggan128", marks=pytest.mark.slow)])
def test_biggan_presets_export_to_onnx_torchscript_and_hf_and_load_exactly(name, tmp_path):
    import onnxruntime as ort

    cfg = tiny(name)
    run_dir = write_run(tmp_path / "run", cfg, class_names=[f"c{i}" for i in range(cfg.model.num_classes)],
                        metrics=False)
    G, _, _ = load_generator(run_dir)
    assert G.hierarchical_z and G.z_chunk == 20 and G.z_dim == cfg.model.z_dim
    z, y, want = reference(run_dir, 3)
    assert want.shape == (3, 3, cfg.model.resolution, cfg.model.resolution)
    for fmt, out in (("onnx", tmp_path / "G.onnx"), ("torchscript", tmp_path / "G.pt"), ("hf", tmp_path / "hf")):
        assert export_checkpoint(run_dir, fmt, out, num_checked=4).max_diff <= 1e-4, fmt
    sess = ort.InferenceSession(str(tmp_path / "G.onnx"), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(sess.run(["images"], {"z": z.numpy(), "y": y.numpy()})[0])
    assert (got - want).abs().max() <= 1e-4
    scripted = torch.jit.load(str(tmp_path / "G.pt"))
    with torch.no_grad():
        assert (scripted(z, y) - want).abs().max() <= 1e-5
        assert torch.equal(Generator.from_pretrained(tmp_path / "hf")(z, y), want)
        assert (G(z, (y + 1) % cfg.model.num_classes) - want).abs().max() > 1e-3  # not vacuous: the class matters


def test_cifar10_biggan_samples_with_the_truncation_trick(tmp_path):
    from sagan.commands.sample import main as sample_cli

    run_dir = write_run(tmp_path / "run", tiny("cifar10_biggan"), metrics=False)
    sets = {}
    for t in ("0.5", None):
        out = tmp_path / f"s{t}.npz"
        args = ["--checkpoint", run_dir, "--out", out, "--num-samples", 4, "--seed", 1]
        args += ["--truncation", t] if t else []
        r = CliRunner().invoke(sample_cli, [str(a) for a in args])
        assert r.exit_code == 0, r.output
        sets[t] = np.load(out)
    assert float(sets["0.5"]["truncation"]) == pytest.approx(0.5)
    assert sets["0.5"]["images"].shape == (4, 32, 32, 3)
    assert np.abs(sets["0.5"]["images"].astype(int) - sets[None]["images"].astype(int)).max() > 0  # it truncates


@pytest.mark.parametrize("name", ["cifar10_biggan", pytest.param("biggan128", marks=pytest.mark.slow)])
def test_biggan_presets_resume_bit_exactly_with_orthogonal_regularisation(name, tmp_path):
    cfg = tiny(name, *TINY_TRAIN, "train.ortho_reg=1e-4", "train.mixed_precision='no'", "train.channels_last=false",
               "model.num_classes=10")  # the built-in demo data has up to 12 classes
    a, b = straight_and_resumed(cfg, tmp_path, steps=4, split=2)
    assert a["step"] == b["step"] == 4 and a["data"] == b["data"]
    for key in ("G", "D", "G_ema", "opt_G", "opt_D"):
        assert_same_state(a[key], b[key], key)
    assert "shared.weight" in a["G"]


@pytest.mark.slow
def test_biggan_options_are_split_invariant_under_two_processes(tmp_path):
    """Hierarchical latents, the shared embedding and orthogonal regularisation: 2 accelerate processes
    (gloo) x 1 micro-batch give the weights of 1 process x 2 accumulation steps."""
    from split_utils import TOL, launch_two_processes, rel_l2, tiny as split_tiny, weights
    from sagan.training import train

    biggan = ["model.hierarchical_z=true", "model.z_dim=80", "model.shared_dim=16", "train.ortho_reg=1e-4"]
    p2 = launch_two_processes(tmp_path / "p2", *biggan)
    p1 = train(split_tiny("train.grad_accum=2", *biggan), outdir=tmp_path / "p1", progress=False)
    full = train(split_tiny(*biggan, "train.seed=1"), outdir=tmp_path / "other", progress=False)
    a, b = weights(p2 / "checkpoints/last.pt"), weights(p1 / "checkpoints/last.pt")
    assert rel_l2(a, b) < TOL
    assert rel_l2(weights(full / "checkpoints/last.pt"), b) > 100 * TOL  # the control: another seed differs
