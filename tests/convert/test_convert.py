"""sagan.convert studiogan: StudioGAN's SAGAN files -> a sagan checkpoint that is the same function.

The StudioGAN side is an independent implementation of its forward pass (``studiogan_reference``: legacy
hook spectral norm, one-hot SN-linear CBN, in-place ReLU in D) saved in its file layout; the converted
networks must give the same outputs in eval mode within 1e-5. Then the converted file samples, draws
attention maps, evaluates and resumes training; every refusal is one line.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from convert_utils import CH, CLASSES, NAMES, NARROW, RES, STEP, Z, convert, reference, refused, studiogan  # noqa: F401
from sagan.checkpoint import checkpoint_config, load_checkpoint
from sagan.config import load_config
from sagan.convert.studiogan_files import load_file
from sagan.models import Discriminator, Generator, count_parameters
from studiogan_reference import RefDiscriminator, RefGenerator, make_trained_like, save_run


def converted_nets(path, ema: bool = False):
    ckpt = load_checkpoint(path)
    cfg = checkpoint_config(ckpt)
    G, D = Generator.from_config(cfg), Discriminator.from_config(cfg)
    G.load_state_dict(ckpt["G_ema" if ema else "G"])
    D.load_state_dict(ckpt["D"])
    return G.eval(), D.eval(), ckpt


@pytest.fixture(scope="module")
def converted(studiogan, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted") / "sagan_studiogan.pt"
    names = out.parent / "names.txt"
    names.write_text("".join(f"{n}\n" for n in NAMES) + "\n")  # a trailing blank line is fine
    r = convert("--ckpt-dir", studiogan[0], "--out", out, "--class-names", names, *NARROW)
    assert r.exit_code == 0, r.output
    assert f"wrote {out}" in r.output and "StudioGAN step 1234: 32px, 10 classes" in r.output
    return out


# --------------------------------------------------------------------------------------------------
# the same function


def test_generator_and_ema_equal_studiogan_formulation(studiogan, converted):
    _, G_ref, G_ema_ref, _ = studiogan
    z = torch.randn(2 * CLASSES, Z, generator=torch.Generator().manual_seed(1))
    y = torch.arange(2 * CLASSES) % CLASSES
    for ema, ref in ((False, G_ref), (True, G_ema_ref)):
        G, _, _ = converted_nets(converted, ema=ema)
        with torch.no_grad():
            want, got = ref(z, y), G(z, y)
            torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
            # not vacuous: the class (CBN tables) and the attention (sigma != 0) both change the images
            assert (ref(z, (y + 1) % CLASSES) - want).abs().max() > 1e-2
    assert (G_ref(z, y) - G_ema_ref(z, y)).abs().max() > 1e-2  # G and G_ema were converted separately


def test_discriminator_equals_studiogan_including_inplace_relu_shortcut(studiogan, converted):
    D_ref = studiogan[3]
    _, D, _ = converted_nets(converted)
    x = torch.randn(16, 3, RES, RES, generator=torch.Generator().manual_seed(2))
    y = torch.arange(16) % CLASSES
    with torch.no_grad():
        want = D_ref(x, y)
        torch.testing.assert_close(D(x, y), want, rtol=1e-5, atol=1e-5)
        assert (D_ref(x, (y + 3) % CLASSES) - want).abs().max() > 1e-3  # the projection matters
        # the paper's block (shortcut sees x, not relu(x)) is a different function: why the option is set
        for block in D.blocks:
            block.shortcut_relu = False
        assert (D(x, y) - want).abs().max() > 0.1 * want.abs().max()


def test_v03_embedding_cbn_layout_converts_exactly(tmp_path):
    """StudioGAN up to v0.3 kept CBN as SN embeddings (bn1.embed0 / embed1) instead of one-hot SN linears."""
    G_ref, D_ref = reference(cbn="embedding", seed=3)
    save_run(tmp_path / "run", G_ref, D_ref, 500, which="current")
    r = convert("--ckpt-dir", tmp_path / "run", "--which", "current", "--out", tmp_path / "c.pt", *NARROW)
    assert r.exit_code == 0, r.output
    G, D, ckpt = converted_nets(tmp_path / "c.pt")
    assert ckpt["G_ema"] is None and ckpt["step"] == 500
    z, y = torch.randn(10, Z), torch.arange(10)
    with torch.no_grad():
        torch.testing.assert_close(G(z, y), G_ref(z, y), rtol=0, atol=1e-5)
        x = torch.randn(10, 3, RES, RES)
        torch.testing.assert_close(D(x, y), D_ref(x, y), rtol=1e-5, atol=1e-5)


def test_converted_checkpoint_holds_studiogans_architecture_and_no_training_state(converted):
    ckpt = load_checkpoint(converted)
    m = checkpoint_config(ckpt).model
    assert (m.resolution, m.num_classes, m.g_ch, m.d_ch, m.z_dim) == (RES, CLASSES, CH, CH, Z)
    assert (m.bn_eps, m.sn_eps, m.d_shortcut_relu, m.g_attn, m.d_attn) == (1e-4, 1e-6, True, (16,), (16,))
    assert checkpoint_config(ckpt).name == "demo-studiogan"
    assert ckpt["step"] == STEP
    assert all(ckpt[k] is None for k in ("opt_G", "opt_D", "rng", "data"))
    assert ckpt["class_names"] == NAMES
    meta = ckpt["meta"]
    assert meta["converted_from"] == "studiogan" and meta["source_step"] == STEP and meta["which"] == "best"
    assert meta["source_files"] == [f"model={n}-best-weights-step={STEP}.pth" for n in ("G", "G_ema", "D")]
    assert meta["best_fid"] == 34.73 and isinstance(meta["best_fid"], float)  # a numpy float64 in the file


def test_parameter_counts_are_studiogans_at_128px():
    """StudioGAN's SAGAN counts (G 42,017,412 + D 39,448,258) for the reference and for our paper preset."""
    cfg = load_config("imagenet128", overrides=["model.init=normal"])
    ours = count_parameters(Generator.from_config(cfg)), count_parameters(Discriminator.from_config(cfg))
    ref = (count_parameters(RefGenerator(128, 1000, 128, 64, (4,))),
           count_parameters(RefDiscriminator(128, 1000, 64, (1,))))
    assert ours == ref == (42_017_412, 39_448_258)


@pytest.mark.slow
def test_full_size_imagenet128_conversion_is_exact(tmp_path):
    """The paper preset itself: 128px, 1000 classes, attention at 64px (~25 s on 2 CPU cores)."""
    torch.manual_seed(0)
    G_ref, D_ref = RefGenerator(128, 1000, 128, 64, (4,)), RefDiscriminator(128, 1000, 64, (1,))
    make_trained_like(G_ref, D_ref, 1000, 128)
    save_run(tmp_path / "run", G_ref, D_ref, 1_000_000)
    r = convert("--ckpt-dir", tmp_path / "run", "--out", tmp_path / "c.pt")
    assert r.exit_code == 0, r.output
    G, D, _ = converted_nets(tmp_path / "c.pt")
    z, y = torch.randn(4, 128), torch.tensor([1, 207, 360, 980])
    with torch.no_grad():
        img = G_ref(z, y)
        torch.testing.assert_close(G(z, y), img, rtol=0, atol=1e-5)
        torch.testing.assert_close(D(img, y), D_ref(img, y), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------------------
# refusals: one line, nothing written


def test_refuses_attention_placement_that_does_not_fit(studiogan, tmp_path):
    out = tmp_path / "x.pt"
    r = convert("--ckpt-dir", studiogan[0], "--out", out, *NARROW, "--set", "model.g_attn=[8]")
    refused(r, out, "model=G-best-weights-step=1234.pth", "blocks.2.0.conv1x1_theta.weight_orig",
            "after G's 16px block", "model.g_attn=[8]", "--set model.g_attn=[16]")
    r = convert("--ckpt-dir", studiogan[0], "--out", out, *NARROW, "--set", "model.d_attn=[16,8]")
    refused(r, out, "model=D-best-weights-step=1234.pth", "after D's 8px block", "the checkpoint has none there")


def test_refuses_shapes_that_do_not_fit_naming_the_first_tensor(studiogan, tmp_path):
    out = tmp_path / "x.pt"
    r = convert("--ckpt-dir", studiogan[0], "--out", out, "--config", "demo")  # demo is g_ch 32, not 8
    refused(r, out, "tensor linear0.bias", "shape (512,)", "config demo-studiogan needs (2048,)")
    r = convert("--ckpt-dir", studiogan[0], "--out", out, *NARROW, "--set", "model.z_dim=128")
    refused(r, out, "tensor linear0.weight_orig")


def test_refuses_pickled_code_without_running_it(studiogan, tmp_path):
    marker = tmp_path / "code_ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    folder = tmp_path / "run"
    folder.mkdir()
    for f in studiogan[0].iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    g_file = folder / f"model=G-best-weights-step={STEP}.pth"
    entry = torch.load(g_file, weights_only=True)
    entry["extra"] = Payload()
    torch.save(entry, g_file)
    out = tmp_path / "x.pt"
    refused(convert("--ckpt-dir", folder, "--out", out, *NARROW), out, "refusing to load", "(io.open)",
            "could run code")
    assert not marker.exists()


def test_refuses_missing_duplicate_and_inconsistent_files(studiogan, tmp_path):
    src, out = studiogan[0], tmp_path / "x.pt"
    folder = tmp_path / "run"
    folder.mkdir()
    g_name = f"model=G-best-weights-step={STEP}.pth"
    (folder / g_name).write_bytes((src / g_name).read_bytes())
    refused(convert("--ckpt-dir", folder, "--out", out, *NARROW), out, "no model=D-best-weights-step=*.pth",
            "--which current")
    refused(convert("--ckpt-dir", tmp_path / "nowhere", "--out", out), out, "is not a folder")
    d_name = f"model=D-best-weights-step={STEP}.pth"
    (folder / d_name).write_bytes((src / d_name).read_bytes())
    (folder / "model=G-best-weights-step=99.pth").write_bytes((src / g_name).read_bytes())
    refused(convert("--ckpt-dir", folder, "--out", out, *NARROW), out, "holds 2 model=G-best-weights-step=*.pth")
    (folder / "model=G-best-weights-step=99.pth").unlink()
    (folder / d_name).rename(folder / "model=D-best-weights-step=1000.pth")
    refused(convert("--ckpt-dir", folder, "--out", out, *NARROW), out, "different steps")
    (folder / "model=D-best-weights-step=1000.pth").unlink()
    (folder / "model=D-best-weights-step=1234.pth").write_bytes(b"not a torch file")
    refused(convert("--ckpt-dir", folder, "--out", out, *NARROW), out, "cannot read", d_name)


def test_refuses_other_studiogan_models_and_bad_class_names(studiogan, tmp_path):
    G_ref, D_ref = studiogan[1], studiogan[3]
    ac_head = {**D_ref.state_dict(), "linear2.weight_orig": torch.zeros(CLASSES, 4 * CH)}
    folder = tmp_path / "ac"
    save_run(folder, G_ref, D_ref, STEP)
    d_file = folder / f"model=D-best-weights-step={STEP}.pth"
    entry = load_file(d_file)
    entry["state_dict"] = ac_head
    torch.save(entry, d_file)
    out = tmp_path / "x.pt"
    refused(convert("--ckpt-dir", folder, "--out", out, *NARROW), out, "tensor linear2.weight_orig has no place")

    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n")
    refused(convert("--ckpt-dir", studiogan[0], "--out", out, "--class-names", names, *NARROW), out,
            "has 2 names, the checkpoint 10 classes")
    names.write_text("cat\n\ndog\n")
    refused(convert("--ckpt-dir", studiogan[0], "--out", out, "--class-names", names, *NARROW), out,
            "line 2 is empty")
    refused(convert("--ckpt-dir", studiogan[0], "--out", tmp_path, *NARROW), tmp_path / "none", "is a folder")


# --------------------------------------------------------------------------------------------------
# the converted checkpoint in sample.py, evaluate.py and train.py --resume


def test_converted_checkpoint_samples_grid_and_attention_maps(converted, tmp_path):
    from PIL import Image

    from sagan.commands.sample import main as sample_main

    for extra, name in (([], "grid.png"), (["--attention-maps", "--num-images", 2], "attn.png")):
        out = tmp_path / name
        r = CliRunner().invoke(sample_main, ["--checkpoint", str(converted), "--out", str(out), "--device", "cpu",
                                             *map(str, extra)])
        assert r.exit_code == 0, r.output
        assert Image.open(out).size[0] > RES


def test_converted_checkpoint_evaluates(converted, tmp_path):
    from metrics_utils import calibrated_inception_state, save_state, smooth_images, write_image_tree
    from sagan.commands.evaluate import main as evaluate_main

    weights = save_state(calibrated_inception_state(seed=2, num_images=4), tmp_path / "inc.pth")
    write_image_tree(tmp_path / "tree", smooth_images(CLASSES, RES, seed=5), np.arange(CLASSES), NAMES)
    runner = CliRunner()
    r = runner.invoke(evaluate_main, ["stats", "--data", str(tmp_path / "tree"), "--resolution", str(RES), "--out",
                                      str(tmp_path / "ref.npz"), "--inception-weights", str(weights),
                                      "--batch-size", "10", "--num-workers", "0", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(evaluate_main, ["metrics", "--ref", str(tmp_path / "ref.npz"), "--checkpoint", str(converted),
                                      "--num-samples", "10", "--splits", "2", "--no-intra-fid", "--out",
                                      str(tmp_path / "report.json"), "--inception-weights", str(weights),
                                      "--batch-size", "10", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert np.isfinite(report["fid"]) and report["provenance"]["step"] == STEP and report["num_samples"] == 10


def test_converted_checkpoint_resumes_training(converted, tmp_path):
    from sagan.commands.train import main as train_main

    run = tmp_path / "finetune"
    r = CliRunner().invoke(train_main, ["--resume", str(converted), "--outdir", str(run), "--max-steps", str(STEP + 2),
                                        "--batch-size", "4", "--set", "data.demo_size=16", "--no-progress"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert last["step"] == STEP + 2 and last["opt_G"] is not None
    assert checkpoint_config(last).model.d_shortcut_relu  # fine-tuning keeps StudioGAN's function
    before = load_checkpoint(converted)["G"]
    moved = [k for k, v in last["G"].items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert moved  # the weights trained


# --------------------------------------------------------------------------------------------------
# StudioGAN's CIFAR-10 SAGAN / SNGAN and Tiny-ImageNet SAGAN: its own per-resolution tables


def studiogan_run(folder, res: int, classes: int, g_attn, d_attn, g_sn: bool = True, ch: int = 64, seed: int = 0):
    from studiogan_reference import STUDIOGAN_D_DIMS, STUDIOGAN_G_DIMS

    torch.manual_seed(seed)
    G = RefGenerator(res, classes, 128, ch, g_attn, dims=STUDIOGAN_G_DIMS[res], use_sn=g_sn)
    D = RefDiscriminator(res, classes, ch, d_attn, dims=STUDIOGAN_D_DIMS[res])
    make_trained_like(G, D, classes, 128, seed)
    save_run(folder, G, D, 90_000)
    return G, D


def assert_same_function(path, G_ref, D_ref, classes: int, res: int):
    G, D, _ = converted_nets(path)
    z, y = torch.randn(6, 128, generator=torch.Generator().manual_seed(4)), torch.arange(6) % classes
    with torch.no_grad():
        img = G_ref(z, y)
        torch.testing.assert_close(G(z, y), img, rtol=0, atol=1e-5)
        assert (G_ref(z, (y + 1) % classes) - img).abs().max() > 1e-3  # not vacuous: the class matters
        torch.testing.assert_close(D(img, y), D_ref(img, y), rtol=1e-5, atol=1e-5)
    return G, D


def test_cifar10_sagan_converts_exactly_with_config_cifar10(tmp_path):
    G_ref, D_ref = studiogan_run(tmp_path / "run", 32, 10, (2,), (1,))
    assert (count_parameters(G_ref), count_parameters(D_ref)) == (4_386_308, 1_075_586)
    r = convert("--ckpt-dir", tmp_path / "run", "--out", tmp_path / "c.pt", "--config", "cifar10")
    assert r.exit_code == 0, r.output
    assert "32px, 10 classes, attention G [16]px D [16]px" in r.output
    G, D = assert_same_function(tmp_path / "c.pt", G_ref, D_ref, 10, 32)
    assert checkpoint_config(load_checkpoint(tmp_path / "c.pt")).name == "cifar10-studiogan"


def test_cifar10_sngan_converts_exactly_with_its_architecture_read_from_the_tensors(tmp_path):
    """No --config: widths, z_dim, attention (none) and SN in G (none: apply_g_sn False) from the file;
    the result is the cifar10_sngan preset's network."""
    G_ref, D_ref = studiogan_run(tmp_path / "run", 32, 10, (), (), g_sn=False)
    assert (count_parameters(G_ref), count_parameters(D_ref)) == (4_304_387, 1_055_105)
    r = convert("--ckpt-dir", tmp_path / "run", "--out", tmp_path / "c.pt")
    assert r.exit_code == 0, r.output
    G, D = assert_same_function(tmp_path / "c.pt", G_ref, D_ref, 10, 32)
    m = checkpoint_config(load_checkpoint(tmp_path / "c.pt")).model
    preset = load_config("cifar10_sngan").model
    for k in ("g_widths", "d_widths", "d_down", "g_attn", "d_attn", "g_sn", "z_dim", "bn_eps", "d_shortcut_relu"):
        assert getattr(m, k) == getattr(preset, k), k
    # with the preset named, the same
    r = convert("--ckpt-dir", tmp_path / "run", "--out", tmp_path / "named.pt", "--config", "cifar10_sngan")
    assert r.exit_code == 0, r.output
    assert_same_function(tmp_path / "named.pt", G_ref, D_ref, 10, 32)


def test_narrow_studiogan_widths_are_read_from_the_tensors(tmp_path):
    G_ref, D_ref = studiogan_run(tmp_path / "run", 32, 10, (2,), (1,), ch=16, seed=1)
    r = convert("--ckpt-dir", tmp_path / "run", "--out", tmp_path / "c.pt")
    assert r.exit_code == 0, r.output
    assert_same_function(tmp_path / "c.pt", G_ref, D_ref, 10, 32)
    m = checkpoint_config(load_checkpoint(tmp_path / "c.pt")).model
    assert m.g_widths == (64, 64, 64, 64) and m.d_widths == (32, 32, 32, 32) and m.d_down == (True, True, False, False)
    # a named preset whose widths do not fit is refused naming the first tensor
    out = tmp_path / "x.pt"
    refused(convert("--ckpt-dir", tmp_path / "run", "--out", out, "--config", "cifar10"), out, "tensor linear0",
            "config cifar10-studiogan needs")


@pytest.mark.slow
def test_tiny_imagenet_sagan_converts_exactly(tmp_path):
    """64px, 200 classes, StudioGAN's 64px widths (G 1024 -> 64, D 64 -> 1024), attention after G's third
    block and D's first (~40 s on 2 CPU cores)."""
    G_ref, D_ref = studiogan_run(tmp_path / "run", 64, 200, (3,), (1,))
    for config in ([], ["--config", "tiny_imagenet"]):
        r = convert("--ckpt-dir", tmp_path / "run", "--out", tmp_path / "c.pt", *config)
        assert r.exit_code == 0, r.output
        assert "64px, 200 classes, attention G [32]px D [32]px" in r.output
        G, D = assert_same_function(tmp_path / "c.pt", G_ref, D_ref, 200, 64)
        (tmp_path / "c.pt").unlink()
    assert (count_parameters(G), count_parameters(D)) == (count_parameters(G_ref), count_parameters(D_ref))
