"""Presets and configurable widths: the old presets' networks are unchanged, the published small-scale
presets build exactly the networks of their sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sagan.config import load_config
from sagan.models import Discriminator, Generator, count_parameters

RECORDED = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "preset_networks.json").read_text())


@pytest.mark.parametrize("name", ["imagenet128", "imagenet128_feat32", "demo"])
def test_existing_presets_keep_their_state_dict_keys_and_shapes(name):
    """Recorded from the networks as built before widths became configurable (commit 736fdda): old
    checkpoints keep loading."""
    cfg = load_config(name, overrides=["model.init=normal"])  # shapes only: skip orthogonal init's QRs
    for net, cls in (("G", Generator), ("D", Discriminator)):
        shapes = {k: list(v.shape) for k, v in cls.from_config(cfg).state_dict().items()}
        assert shapes == RECORDED[name][net]["shapes"], f"{name} {net}"


# The recorded sums are of float32 tensors made by float32 kernels (orthogonal init's QR, spectral norm's
# power iterations): another CPU (another BLAS/LAPACK path, other SIMD widths) legitimately moves each element by
# a few units in the last place. Each element differs by at most ~64 float32 ulps (64 * 2**-23 of its
# magnitude), so a sum differs by at most 64 * 2**-23 * sum(|v|) (plus float64 rounding). A change in what the
# networks draw (another order of initial values, another init) moves a sum by about sigma * sqrt(n): with
# another seed every tensor that draws moves by 90 to over 1000 times that bound.
ULPS_ACROSS_CPUS = 64 * 2.0 ** -23


def _demo_networks(threads: int = 1) -> dict[str, dict[str, torch.Tensor]]:
    cfg = load_config("demo")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)  # recorded on one thread: orthogonal init's QR sums in a thread-dependent order
    try:
        built = {}
        for net, cls in (("G", Generator), ("D", Discriminator)):
            torch.manual_seed(0)
            built[net] = cls.from_config(cfg)
    finally:
        torch.set_num_threads(before)
    return built


def test_demo_networks_are_built_bit_for_bit_as_before():
    """Same seed, same tensors: also the order in which parameters draw their initial values is unchanged.
    Keys, shapes and parameter counts are compared exactly; values as float64 sums within what float32
    kernels vary by between CPUs (ULPS_ACROSS_CPUS); bit for bit only between two builds in this process."""
    built, again = _demo_networks(), _demo_networks()
    for net in ("G", "D"):
        state = built[net].state_dict()
        recorded = RECORDED["demo"][net]
        assert {k: list(v.shape) for k, v in state.items()} == recorded["shapes"], f"demo {net}"
        assert count_parameters(built[net]) == sum(
            torch.Size(recorded["shapes"][k]).numel() for k, _ in built[net].named_parameters())
        floats = {k: v for k, v in state.items() if v.is_floating_point()}
        assert floats.keys() == recorded["sums"].keys()
        for k, v in floats.items():
            total, magnitude = float(v.double().sum()), float(v.double().abs().sum())
            bound = ULPS_ACROSS_CPUS * magnitude + 1e-12
            assert abs(total - recorded["sums"][k]) <= bound, f"demo {net} {k}: {total} vs {recorded['sums'][k]}"
        twice = again[net].state_dict()
        assert all(torch.equal(v, twice[k]) for k, v in state.items()), f"demo {net}: two builds differ"


# StudioGAN's parameter counts (its CIFAR-10 training logs) and the reference network that builds the same model
STUDIOGAN = {  # preset: (resolution, classes, attn_g_loc, attn_d_loc, apply_g_sn, G params, D params)
    "cifar10": (32, 10, (2,), (1,), True, 4_386_308, 1_075_586),
    "cifar10_sngan": (32, 10, (), (), False, 4_304_387, 1_055_105),
    "cifar100": (32, 100, (2,), (1,), True, None, None),
    "tiny_imagenet": (64, 200, (3,), (1,), True, None, None),
    "uncond64": (64, 0, (3,), (1,), True, None, None),
}


@pytest.mark.parametrize("name", sorted(STUDIOGAN))
def test_preset_networks_equal_studiogans(name):
    from studiogan_reference import STUDIOGAN_D_DIMS, STUDIOGAN_G_DIMS, RefDiscriminator, RefGenerator

    res, classes, g_loc, d_loc, g_sn, g_count, d_count = STUDIOGAN[name]
    cfg = load_config(name, overrides=["model.init=normal"])
    assert (cfg.model.resolution, cfg.model.num_classes) == (res, classes)
    G, D = Generator.from_config(cfg), Discriminator.from_config(cfg)
    ref_G = RefGenerator(res, classes, 128, 64, g_loc, dims=STUDIOGAN_G_DIMS[res], use_sn=g_sn)
    ref_D = RefDiscriminator(res, classes, 64, d_loc, dims=STUDIOGAN_D_DIMS[res], cond="PD" if classes else "W/O")
    for ours, ref in ((G, ref_G), (D, ref_D)):
        assert count_parameters(ours) == count_parameters(ref)
        # the same tensors (conv/linear weights, biases, BN affines, class tables); dimensions compared as
        # sets: its CBN maps are (C, classes) linear layers, ours (classes, C) tables, its sigma [1], our gamma []
        canon = lambda net: sorted(tuple(sorted(p.shape)) or (1,) for p in net.parameters())  # noqa: E731
        assert canon(ours) == canon(ref)
    if g_count is not None:
        assert (count_parameters(G), count_parameters(D)) == (g_count, d_count)


def test_cifar10_preset_states_studiogans_recipe():
    cfg = load_config("cifar10")
    t, m = cfg.train, cfg.model
    assert (t.batch_size, t.lr_g, t.lr_d, t.beta1, t.beta2, t.adam_eps) == (64, 2e-4, 2e-4, 0.5, 0.999, 1e-6)
    assert (t.d_steps, t.max_steps, t.loss, t.ema, cfg.data.hflip, m.init) == (5, 100_000, "hinge", False, True, "ortho")
    G = Generator.from_config(cfg)
    z = torch.randn(2, m.z_dim)
    assert G(z, torch.tensor([0, 9])).shape == (2, 3, 32, 32)
    D = Discriminator.from_config(cfg)
    assert [px for px in D.block_resolutions] == [16, 8, 8, 8] and set(D.attn) == {"16"} and set(G.attn) == {"16"}


def test_presets_state_only_what_differs_from_their_base():
    from sagan.config import config_chain, merge_chain

    for name in ("cifar10", "cifar10_sngan", "cifar100", "tiny_imagenet", "uncond64", "cpu64"):
        chain = config_chain(name)
        assert len(chain) >= 2, f"{name} has no base"
        base = merge_chain(chain[:-1])
        own = chain[-1][1]
        for section in ("model", "train", "data"):
            for k, v in (own.get(section) or {}).items():
                assert base.get(section, {}).get(k, "<unset>") != v, f"{name}: {section}.{k} repeats its base"


@pytest.mark.parametrize("overrides, match", [
    (["model.g_widths=[256,256,256]"], r"model.g_widths needs 4 entries at 32px"),
    (["model.d_widths=[128,128]", "model.d_down=[true,true,false]"], r"model.d_down needs one entry per D block \(2\)"),
    (["model.d_down=[true,true,true,true]"], r"model.d_down halves 32px 4 times, below 4px"),
    (["model.d_widths=[64,64,64]", "model.d_down=[true,false,false]", "model.d_attn=[8]"],
     r"model.d_attn has 8px but the D at 32px has blocks at \[16\]px"),
    (["model.g_widths=[256,256,100,256]"], r"model.g_attn at 16px: 100 channels, attention needs a multiple of 8"),
    (["model.g_widths=[256,0,256,256]"], r"model.g_widths must be positive channel counts"),
])
def test_bad_widths_are_one_line_errors(overrides, match):
    from sagan.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        load_config("cifar10", overrides=overrides)


def test_d_attention_follows_the_first_block_reaching_its_resolution():
    cfg = load_config("cifar10", overrides=["model.d_attn=[8]", "model.init=normal"])
    D = Discriminator.from_config(cfg)
    assert D.stage_after == {1: "8"}  # blocks at 16, 8, 8, 8 px: after the second, once
    hooks = []
    D.attn["8"].register_forward_hook(lambda m, i, o: hooks.append(i[0].shape))
    D(torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))
    assert hooks == [(2, 128, 8, 8)]


def test_benchmark_reference_networks_follow_the_preset_widths():
    """benchmarks/train_step.py times ours against these: the same networks, parameter for parameter."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from reference_nets import RefDiscriminator, RefGenerator

    for name in ("demo", "cifar10", "cifar10_biggan"):
        cfg = load_config(name, overrides=["model.init=normal"])
        assert count_parameters(RefGenerator(cfg)) == count_parameters(Generator.from_config(cfg))
        assert count_parameters(RefDiscriminator(cfg)) == count_parameters(Discriminator.from_config(cfg))
        ref_D = RefDiscriminator(cfg)
        assert ref_D(torch.randn(2, 3, 32, 32), torch.tensor([0, 1])).shape == (2,)


@pytest.mark.slow
def test_train_py_trains_the_cifar10_preset(tmp_path):
    """The preset itself (its networks, 5 D steps per G step, no EMA) for two steps on the built-in data."""
    from click.testing import CliRunner

    from sagan.checkpoint import load_checkpoint
    from sagan.commands.train import main as train_cli

    run = tmp_path / "run"
    r = CliRunner().invoke(train_cli, ["--config", "cifar10", "--outdir", str(run), "--max-steps", "2",
                                       "--batch-size", "4", "--no-progress", "--set", "data.demo_size=64",
                                       "--set", "train.num_workers=0"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    ckpt = load_checkpoint(run)
    assert ckpt["step"] == 2 and ckpt["opt_D"]["state"][0]["step"] == 10 and ckpt["G_ema"] is None
    log = (run / "log.txt").read_text()
    assert "parameters: G 4.39M + D 1.08M" in log


def test_cpu64_preset_is_uncond64_at_a_step_as_cheap_as_the_demos():
    """cpu64: your own unlabelled images at 64px on a CPU; a training step costs no more FLOPs than the demo's
    (uncond64's costs 48x as much: 55 s per step on a CPU)."""
    from accelerate import Accelerator

    from sagan.training.fit import probe_step

    cfg, base = load_config("cpu64"), load_config("uncond64")
    assert (cfg.model.resolution, cfg.model.num_classes, cfg.train.ema) == (64, 0, True)
    assert [w * 4 for w in cfg.model.g_widths] == list(base.model.g_widths)
    assert [w * 4 for w in cfg.model.d_widths] == list(base.model.d_widths)
    acc = Accelerator(cpu=True)
    per_step = lambda c: probe_step(c, 2, acc).flops / 2 * c.train.batch_size  # noqa: E731
    assert per_step(cfg) <= per_step(load_config("demo"))


def test_train_help_lists_every_preset_from_the_configs_folder_and_unconditional_training():
    from click.testing import CliRunner

    from sagan.config import CONFIG_DIR
    from sagan.commands.train import main as train_cli

    text = " ".join(CliRunner().invoke(train_cli, ["--help"]).output.split())
    presets = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    assert len(presets) >= 10 and "cpu64" in presets
    assert all(f"{name}," in text or f"{name})" in text for name in presets), text
    assert "unconditional" in text and "Train a class-conditional SAGAN" not in text
# StudioGAN's BigGAN configs (big_resnet backbone) and their parameter counts (issue 29)
BIGGAN = {  # preset: (resolution, classes, z_dim, ch, attn_g_loc, attn_d_loc, G params, D params)
    "cifar10_biggan": (32, 10, 80, 96, (2,), (1,), 9_416_196, 2_415_170),  # CIFAR10/BigGAN.yaml (its log)
    "biggan128": (128, 1000, 120, 96, (4,), (1,), 70_433_988, 87_982_370),  # ImageNet/BigGAN-256.yaml
}


@pytest.mark.parametrize("name", [pytest.param("biggan128", marks=pytest.mark.slow), "cifar10_biggan"])
def test_biggan_presets_equal_studiogans_big_resnet(name):
    """Ours and a StudioGAN-style big_resnet, built on the meta device at 128px (shapes, no memory): the
    same parameter counts as StudioGAN's, the same tensors; at 32px also the same output shapes."""
    from studiogan_reference import STUDIOGAN_D_DIMS, RefBigGenerator, RefDiscriminator

    res, classes, z_dim, ch, g_loc, d_loc, g_count, d_count = BIGGAN[name]
    cfg = load_config(name, overrides=["model.init=normal"])
    m = cfg.model
    assert (m.resolution, m.num_classes, m.z_dim, m.shared_dim, m.hierarchical_z) == (res, classes, z_dim, 128, True)
    with torch.device("meta" if res > 32 else "cpu"):
        G, D = Generator.from_config(cfg), Discriminator.from_config(cfg)
        ref_G = RefBigGenerator(res, classes, z_dim, ch, g_loc, shared_dim=128)
        ref_D = RefDiscriminator(res, classes, ch, d_loc, dims=STUDIOGAN_D_DIMS[res])
    if res == 32:  # (autocast, inside our spectral norm, has no meta kernels)
        z, y, x = torch.randn(2, z_dim), torch.tensor([0, 1]), torch.randn(2, 3, res, res)
        with torch.no_grad():
            assert G(z, y).shape == ref_G(z, y).shape == (2, 3, res, res)
            assert D(x, y).shape == ref_D(x, y).shape == (2,)
    assert G.z_chunk == 20 and isinstance(G.shared, torch.nn.Embedding) and G.shared.weight.shape == (classes, 128)
    for ours, ref in ((G, ref_G), (D, ref_D)):
        canon = lambda net: sorted(tuple(sorted(p.shape)) or (1,) for p in net.parameters())  # noqa: E731
        assert canon(ours) == canon(ref)
    assert (count_parameters(G), count_parameters(D)) == (count_parameters(ref_G), count_parameters(ref_D))
    assert (count_parameters(G), count_parameters(D)) == (g_count, d_count)


def test_biggan_presets_state_studiogans_recipes():
    c, i = load_config("cifar10_biggan").train, load_config("biggan128").train
    assert (c.batch_size, c.lr_g, c.lr_d, c.beta1, c.beta2, c.adam_eps, c.d_steps, c.max_steps) == \
        (64, 2e-4, 2e-4, 0.5, 0.999, 1e-6, 5, 100_000)
    assert (c.ema, c.ema_decay, c.ema_start, c.loss) == (True, 0.9999, 1000, "hinge")
    assert (i.batch_size, i.lr_g, i.lr_d, i.beta1, i.beta2, i.d_steps, i.max_steps) == \
        (256, 5e-5, 2e-4, 0.0, 0.999, 2, 200_000)
    assert (i.ema, i.ema_decay, i.ema_start, i.loss) == (True, 0.9999, 20_000, "hinge")
    m = load_config("biggan128").model
    assert (m.g_attn, m.d_attn, m.g_sn, m.d_cond, m.bn_eps, m.d_shortcut_relu) == ((64,), (64,), True, "projection",
                                                                                   1e-4, True)
