"""BigGAN's options of the SAGAN networks (Brock et al. 2019): the shared class embedding, hierarchical
latents and orthogonal regularisation of G, and the combinations they refuse."""

from __future__ import annotations

import pytest
import torch

from sagan.config import Config, load_config
from sagan.errors import ConfigError
from sagan.models import Discriminator, Generator
from sagan.training.regularisers import orthogonal_penalty

BIGGAN_TINY = ["model.g_ch=16", "model.d_ch=16", "model.hierarchical_z=true", "model.z_dim=80", "model.shared_dim=16"]


def biggan_tiny(*overrides: str) -> Config:
    return load_config("demo", overrides=BIGGAN_TINY + list(overrides))


# --------------------------------------------------------------------------------------------------
# shared embedding and hierarchical latents


def test_hierarchical_g_has_biggans_shared_embedding_and_cbn_maps():
    G = Generator.from_config(biggan_tiny())
    assert type(G.shared) is torch.nn.Embedding and not hasattr(G.shared, "parametrizations")  # no SN
    assert G.shared.weight.shape == (10, 16) and G.z_chunk == 20 and len(G.blocks) == 3  # 80 = (3 + 1) x 20
    assert G.linear.in_features == 20
    for block in G.blocks:
        for bn in (block.bn1, block.bn2):
            for lin in (bn.gain, bn.bias):  # SN bias-free linears of [shared(y), z chunk]
                assert lin.in_features == 16 + 20 and lin.bias is None and hasattr(lin, "parametrizations")
    plain = Generator.from_config(biggan_tiny("model.g_sn=false"))
    assert not hasattr(plain.blocks[0].bn1.gain, "parametrizations")  # SN only when G has SN


def test_cbn_gain_is_one_plus_a_linear_map_and_bias_a_linear_map_of_embedding_and_chunk():
    G = Generator.from_config(biggan_tiny()).eval()
    bn = G.blocks[1].bn1
    x, c = torch.randn(3, bn.bn.num_features, 4, 4), torch.randn(3, 36)
    with torch.no_grad():
        want = bn.bn(x) * (1 + c @ bn.gain.weight.T)[:, :, None, None] + (c @ bn.bias.weight.T)[:, :, None, None]
        torch.testing.assert_close(bn(x, c), want)


def _block_inputs(G: Generator, z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, list]:
    """G's input-layer input and each block's (features, conditioning) inputs in one forward."""
    seen, hooks = [], [b.register_forward_hook(lambda m, i, o: seen.append((i[0].clone(), i[1].clone())))
                       for b in G.blocks]
    first = []
    hooks.append(G.linear.register_forward_hook(lambda m, i, o: first.append(i[0].clone())))
    with torch.no_grad():
        G(z, y)
    for h in hooks:
        h.remove()
    return first[0], seen


def test_hierarchical_latents_reach_every_block_each_its_own_chunk():
    """Perturbing chunk k changes only block k's conditioning (chunk 0: only the input layer's input), and
    no block before it sees any change: each block is the first place its chunk enters."""
    G = Generator.from_config(biggan_tiny()).eval()
    z, y = torch.randn(2, 80), torch.tensor([3, 7])
    lin0, base = _block_inputs(G, z, y)
    for k in range(len(G.blocks) + 1):
        z2 = z.clone()
        z2[:, 20 * k:20 * (k + 1)] += 1.0
        lin, seen = _block_inputs(G, z2, y)
        assert torch.equal(lin, lin0) == (k != 0)
        for j, ((x, cond), (x0, cond0)) in enumerate(zip(seen, base)):
            assert torch.equal(cond, cond0) == (j != k - 1), (k, j)  # the chunk conditions block k - 1 only
            assert torch.equal(cond[:, :16], cond0[:, :16])  # the shared embedding part is the class's
            if k >= 1 and j <= k - 1:
                assert torch.equal(x, x0)  # features reaching blocks up to the perturbed one are unchanged
    with torch.no_grad():  # and the class reaches every block through the one shared embedding
        _, other = _block_inputs(G, z, torch.tensor([4, 7]))
    for (_, c), (_, c0) in zip(other, base):
        assert not torch.equal(c[0, :16], c0[0, :16]) and torch.equal(c[1], c0[1])


def test_shared_embedding_alone_conditions_every_cbn_on_the_embedding_only():
    """model.shared_embedding without hierarchical_z: Table 1's "+ shared" row; z goes whole into the input."""
    cfg = load_config("demo", overrides=["model.g_ch=16", "model.d_ch=16", "model.shared_embedding=true",
                                         "model.shared_dim=16"])
    G = Generator.from_config(cfg).eval()
    assert G.linear.in_features == 64 and G.blocks[0].bn1.gain.in_features == 16 and not hasattr(G, "z_chunk")
    z, y = torch.randn(2, 64), torch.tensor([1, 2])
    _, seen = _block_inputs(G, z, y)
    assert all(torch.equal(c, G.shared(y)) for _, c in seen)
    assert G(z, y).shape == (2, 3, 32, 32)
    soft = torch.nn.functional.one_hot(y, 10).float()  # soft class weights work through the shared embedding
    with torch.no_grad():
        torch.testing.assert_close(G(z, soft), G(z, y))


def test_a_default_config_builds_no_shared_embedding_and_old_configs_load():
    cfg = load_config("demo")
    assert not cfg.model.shared_embedding and cfg.train.ortho_reg == 0.0
    assert not hasattr(Generator.from_config(cfg.replace(model={"init": "normal"})), "shared")
    old = cfg.to_dict()  # a checkpoint's config from before these keys existed
    del old["model"]["shared_embedding"], old["train"]["ortho_reg"]
    assert Config.from_dict(old) == cfg


@pytest.mark.parametrize("overrides, match", [
    (["model.hierarchical_z=true", "model.z_dim=90"],
     r"model.z_dim=90 must split evenly into 4 chunks with hierarchical_z at 32px .*use a multiple of 4 such as 88"),
    (["model.shared_embedding=true", "model.num_classes=0"], r"model.shared_embedding needs classes"),
    (["model.hierarchical_z=true", "model.z_dim=80", "model.num_classes=0"], r"model.hierarchical_z needs classes"),
    (["train.ortho_reg=-1e-4"], r"train.ortho_reg must be >= 0 \(0 = off; BigGAN uses 1e-4\), got -0.0001"),
])
def test_combinations_the_networks_cannot_build_are_one_line(overrides, match):
    with pytest.raises(ConfigError, match=match) as e:
        load_config("demo", overrides=overrides)
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------------------------------------
# orthogonal regularisation


def test_orthogonal_penalty_equals_a_by_hand_sum_over_raw_weights_without_the_shared_embedding():
    G = Generator.from_config(biggan_tiny())
    total, names = torch.zeros((), dtype=torch.float64), []
    for name, p in G.named_parameters():
        if p.dim() < 2 or name.startswith("shared."):
            continue
        names.append(name)
        w = p.detach().double().reshape(p.shape[0], -1)
        # sum over i != j of <w_i, w_j>^2: all pairs minus the diagonal ones (|w_i|^4)
        total += torch.einsum("ik,jk->ij", w, w).square().sum() - w.square().sum(1).square().sum()
    assert "linear.parametrizations.weight.original" in names  # under SN: the raw weight
    assert "blocks.0.bn1.gain.parametrizations.weight.original" in names and "shared.weight" not in names
    torch.testing.assert_close(orthogonal_penalty(G).double(), total, rtol=1e-5, atol=0)
    with torch.no_grad():  # the shared embedding does not count
        G.shared.weight.mul_(10)
    torch.testing.assert_close(orthogonal_penalty(G).double(), total, rtol=1e-5, atol=0)


def test_orthogonal_penalty_gradient_is_biggan_pytorchs_ortho_formula():
    """d/dW of (beta / 2) * penalty = 2 beta ((W W^T) * (1 - I)) W (BigGAN-PyTorch utils.ortho), per parameter."""
    beta = 1e-4
    G = Generator.from_config(biggan_tiny()).double()
    (beta / 2 * orthogonal_penalty(G)).backward()
    checked = 0
    for name, p in G.named_parameters():
        if p.dim() < 2 or name.startswith("shared."):
            assert p.grad is None, name
            continue
        w = p.detach().reshape(p.shape[0], -1)
        formula = 2 * beta * ((w @ w.T) * (1 - torch.eye(w.shape[0], dtype=w.dtype))) @ w
        torch.testing.assert_close(p.grad.reshape(p.shape[0], -1), formula, rtol=1e-9, atol=1e-15)
        checked += 1
    assert checked > 20


def test_ortho_reg_adds_half_beta_times_the_penalty_to_g_loss_as_a_logged_part():
    from accelerate import Accelerator

    from sagan.data import open_dataset
    from sagan.data.stream import DataStream, EpochBatchSampler
    from sagan.training.step import GANStep

    runs = {}
    for beta in (0.0, 1e-2):
        cfg = biggan_tiny("data.demo_size=32", "train.batch_size=4", f"train.ortho_reg={beta}", "train.num_workers=0")
        torch.manual_seed(0)
        G, D = Generator.from_config(cfg), Discriminator.from_config(cfg)
        penalty = float(orthogonal_penalty(G).detach())
        ds = open_dataset(None, resolution=32, demo_size=32, demo_classes=10)
        stream = DataStream(ds, EpochBatchSampler(len(ds), 4, 1, 0, 1, 0), 0, False)
        step = GANStep(cfg, G, D, Accelerator(cpu=True))
        runs[beta] = (step(1, stream.next), penalty, {k: v.clone() for k, v in G.state_dict().items()})
    plain, (stats, penalty, weights) = runs[0.0][0], runs[1e-2]
    assert "g_loss_ortho" not in plain
    assert float(stats["g_loss_ortho"]) == pytest.approx(1e-2 / 2 * penalty, rel=1e-5)
    # the adversarial part is the same draw: g_loss gains exactly the ortho part
    assert float(stats["g_loss"] - stats["g_loss_ortho"]) == pytest.approx(float(plain["g_loss"]), rel=1e-5, abs=1e-6)
    key = "blocks.0.conv1.parametrizations.weight.original"
    assert not torch.equal(weights[key], runs[0.0][2][key])  # and G's update differs
