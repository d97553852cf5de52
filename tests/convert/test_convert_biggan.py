"""sagan-convert studiogan on StudioGAN's BigGAN (big_resnet) files: CIFAR-10 and ImageNet layouts, G, G_ema
and D, the same function as a StudioGAN-style big_resnet (``studiogan_reference.RefBigGenerator``) within 1e-5."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from sagan.checkpoint import checkpoint_config, load_checkpoint
from sagan.config import load_config
from sagan.commands.convert import main as convert_main
from sagan.models import Discriminator, Generator, count_parameters
from studiogan_reference import STUDIOGAN_D_DIMS, RefBigGenerator, RefDiscriminator, make_trained_like, save_run


def convert(*args):
    return CliRunner().invoke(convert_main, ["studiogan", *[str(a) for a in args]])


def biggan_run(folder, res: int, classes: int, z_dim: int, ch: int, g_attn, d_attn, shared_dim: int = 128,
               seed: int = 0):
    """A StudioGAN BigGAN save (G, G_ema with other weights, D) moved off its init; returns the networks."""
    torch.manual_seed(seed)
    G = RefBigGenerator(res, classes, z_dim, ch, g_attn, shared_dim=shared_dim)
    D = RefDiscriminator(res, classes, ch, d_attn, dims=STUDIOGAN_D_DIMS[res])
    make_trained_like(G, D, classes, z_dim, seed)
    G_ema = RefBigGenerator(res, classes, z_dim, ch, g_attn, shared_dim=shared_dim)
    G_ema.load_state_dict(G.state_dict())
    with torch.no_grad():
        for p in G_ema.parameters():  # relative: keeps the stored SN vectors close to the weights' (conditioning)
            p.mul_(1 + 0.1 * torch.randn_like(p))
    save_run(folder, G, D, 98_000, G_ema=G_ema.eval())
    return G, G_ema, D


def assert_same_functions(path, refs, classes: int, res: int, z_dim: int):
    ckpt = load_checkpoint(path)
    cfg = checkpoint_config(ckpt)
    G_ref, G_ema_ref, D_ref = refs
    z = torch.randn(6, z_dim, generator=torch.Generator().manual_seed(4))
    y = torch.arange(6) * 7 % classes
    for key, ref in (("G", G_ref), ("G_ema", G_ema_ref)):
        G = Generator.from_config(cfg)
        G.load_state_dict(ckpt[key])
        G.eval()
        with torch.no_grad():
            img = ref(z, y)
            torch.testing.assert_close(G(z, y), img, rtol=0, atol=1e-5)
            assert (ref(z, (y + 1) % classes) - img).abs().max() > 1e-3  # not vacuous: the class matters
            z2 = z.clone()
            z2[:, -z_dim // (len(G.blocks) + 1):] += 1  # the last block's chunk matters too
            assert (ref(z2, y) - img).abs().max() > 1e-4
    D = Discriminator.from_config(cfg)
    D.load_state_dict(ckpt["D"])
    D.eval()
    with torch.no_grad():
        torch.testing.assert_close(D(img, y), D_ref(img, y), rtol=1e-5, atol=1e-5)
    assert (G_ref(z, y) - G_ema_ref(z, y)).abs().max() > 1e-2  # G and G_ema were converted separately
    return cfg


def test_cifar10_biggan_converts_exactly_from_the_tensors_and_with_its_preset(tmp_path):
    """StudioGAN's CIFAR-10 BigGAN layout at narrow widths (ch 16: G 64, D 32; z 80 = 4 x 20, shared 32):
    without --config the architecture is read from the tensors (on the cifar10_biggan preset); with
    --config cifar10_biggan and the widths set, the same."""
    refs = biggan_run(tmp_path / "run", 32, 10, 80, 16, (2,), (1,), shared_dim=32)
    r = convert("--ckpt-dir", tmp_path / "run", "--out", tmp_path / "c.pt")
    assert r.exit_code == 0, r.output
    assert "32px, 10 classes, attention G [16]px D [16]px" in r.output
    cfg = assert_same_functions(tmp_path / "c.pt", refs, 10, 32, 80)
    m = cfg.model
    assert (m.hierarchical_z, m.shared_dim, m.z_dim, m.g_widths, m.d_widths) == (True, 32, 80, (64,) * 4, (32,) * 4)
    assert cfg.name == "cifar10_biggan-studiogan" and cfg.train.ema_start == 1000
    r = convert("--ckpt-dir", tmp_path / "run", "--out", tmp_path / "named.pt", "--config", "cifar10_biggan",
                "--set", "model.g_widths=[64,64,64,64]", "--set", "model.d_widths=[32,32,32,32]")
    assert r.exit_code == 0, r.output
    assert "model.shared_dim=32" in r.output  # told what differs from the preset
    assert_same_functions(tmp_path / "named.pt", refs, 10, 32, 80)


def test_imagenet_biggan_layout_converts_exactly(tmp_path):
    """StudioGAN's ImageNet BigGAN layout (128px, 1000 classes, z 120 = 6 x 20, attention at 64px in both)
    at ch 8: read from the tensors on the biggan128 preset."""
    refs = biggan_run(tmp_path / "run", 128, 1000, 120, 8, (4,), (1,), shared_dim=16)
    r = convert("--ckpt-dir", tmp_path / "run", "--out", tmp_path / "c.pt")
    assert r.exit_code == 0, r.output
    assert "128px, 1000 classes, attention G [64]px D [64]px" in r.output
    cfg = assert_same_functions(tmp_path / "c.pt", refs, 1000, 128, 120)
    assert cfg.name == "biggan128-studiogan" and (cfg.model.z_dim, cfg.model.g_ch) == (120, 96)
    assert cfg.model.g_widths == (128, 128, 64, 32, 16, 8)


@pytest.mark.slow
def test_cifar10_biggan_full_size_converts_exactly_with_config_cifar10_biggan(tmp_path):
    """The preset itself: StudioGAN's CIFAR-10 BigGAN, G 9,416,196 + D 2,415,170 parameters."""
    refs = biggan_run(tmp_path / "run", 32, 10, 80, 96, (2,), (1,))
    assert (count_parameters(refs[0]), count_parameters(refs[2])) == (9_416_196, 2_415_170)
    r = convert("--ckpt-dir", tmp_path / "run", "--out", tmp_path / "c.pt", "--config", "cifar10_biggan")
    assert r.exit_code == 0, r.output
    cfg = assert_same_functions(tmp_path / "c.pt", refs, 10, 32, 80)
    preset = load_config("cifar10_biggan").model
    for k in ("g_widths", "d_widths", "d_down", "g_attn", "d_attn", "z_dim", "shared_dim", "hierarchical_z", "bn_eps"):
        assert getattr(cfg.model, k) == getattr(preset, k), k
