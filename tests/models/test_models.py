"""The networks as the paper and the official release specify them."""

from __future__ import annotations

import copy

import pytest
import torch

from gan_step_utils import build_step
from sagan.config import load_config
from sagan.models.layers import ConditionalBatchNorm2d
from sagan.models import Discriminator, Generator, count_parameters

from model_utils import spread_class_conditioning


def sn_weights(module):
    """(name, normalised weight) of every spectrally normalised layer."""
    for name, m in module.named_modules():
        if hasattr(m, "parametrizations") and "weight" in m.parametrizations:
            yield name, m.weight


def largest_singular_value(w: torch.Tensor) -> float:
    return torch.linalg.matrix_norm(w.detach().flatten(1), ord=2).item()


def test_demo_shapes_and_ranges(tiny_cfg):
    G, D = Generator.from_config(tiny_cfg), Discriminator.from_config(tiny_cfg)
    assert (G.z_dim, G.num_classes, G.resolution) == (64, 10, 32)
    z, y = torch.randn(4, G.z_dim), torch.arange(4)
    x = G(z, y)
    assert x.shape == (4, 3, 32, 32)
    assert x.min() >= -1 and x.max() <= 1
    assert D(x, y).shape == (4,)


def test_paper_preset_architecture_and_size():
    """ImageNet 128: G 1024-1024-512-256-128-64 channels, D 64-...-1024-1024; ~42.0M + 39.4M params (StudioGAN)."""
    cfg = load_config("imagenet128")
    G, D = Generator.from_config(cfg), Discriminator.from_config(cfg)
    assert [b.conv2.out_channels for b in G.blocks] == [1024, 512, 256, 128, 64]
    assert G.linear.out_features == 4 * 4 * 1024
    assert [b.conv2.out_channels for b in D.blocks] == [64, 128, 256, 512, 1024, 1024]
    assert [b.downsample for b in D.blocks] == [True] * 5 + [False]
    assert list(G.attn) == ["64"] and G.attn["64"].channels == 128  # after the 128-channel block
    assert list(D.attn) == ["64"] and D.attn["64"].channels == 64  # after the first block
    n_g, n_d = count_parameters(G), count_parameters(D)
    print(f"paper preset: G {n_g / 1e6:.2f}M, D {n_d / 1e6:.2f}M, total {(n_g + n_d) / 1e6:.2f}M")
    assert abs(n_g - 42.0e6) < 0.3e6 and abs(n_d - 39.4e6) < 0.3e6
    with torch.no_grad():
        G.eval(), D.eval()
        x = G(torch.randn(1, 128), torch.tensor([3]))
        assert x.shape == (1, 3, 128, 128)
        assert D(x, torch.tensor([3])).shape == (1,)


def test_feat32_preset_places_attention_at_32px():
    cfg = load_config("imagenet128_feat32")
    G, D = Generator.from_config(cfg), Discriminator.from_config(cfg)
    assert list(G.attn) == ["32"] and G.attn["32"].channels == 256
    assert list(D.attn) == ["32"] and D.attn["32"].channels == 128


def test_every_conv_linear_and_embedding_is_spectrally_normalised(tiny_cfg):
    for net in (Generator.from_config(tiny_cfg), Discriminator.from_config(tiny_cfg)):
        for name, m in net.named_modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                assert hasattr(m, "parametrizations"), f"{name} has no spectral norm"
            # CBN gain/bias tables go without SN, as in the official release
            if isinstance(m, torch.nn.Embedding) and ".gain" not in f".{name}" and ".bias" not in f".{name}":
                assert hasattr(m, "parametrizations"), f"{name} has no spectral norm"


def test_spectral_norm_bounds_largest_singular_value_after_a_few_steps(tiny_cfg):
    D = Discriminator.from_config(tiny_cfg)
    opt = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.0, 0.9))
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    for _ in range(20):
        loss = -D(x, y).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for _ in range(10):  # a few power iterations on the final weights
        with torch.no_grad():
            D(x, y)
    for name, w in sn_weights(D):
        sigma = largest_singular_value(w)
        assert 0.9 < sigma < 1.1, f"{name}: sigma = {sigma:.3f}"


def test_conditional_batch_norm_starts_as_plain_batch_norm():
    cbn = ConditionalBatchNorm2d(8, num_classes=5)
    x = torch.randn(6, 8, 4, 4)
    ref = torch.nn.functional.batch_norm(x, None, None, training=True, eps=1e-5)
    torch.testing.assert_close(cbn(x, torch.arange(6) % 5), ref)
    assert torch.equal(cbn.gain.weight, torch.ones(5, 8)) and torch.equal(cbn.bias.weight, torch.zeros(5, 8))


def test_generator_and_discriminator_depend_on_the_label(tiny_cfg):
    G, D = spread_class_conditioning(Generator.from_config(tiny_cfg)), Discriminator.from_config(tiny_cfg)
    G.eval()
    z = torch.randn(1, G.z_dim).repeat(2, 1)
    y = torch.tensor([0, 1])
    x = G(z, y)
    assert (x[0] - x[1]).abs().max() > 1e-3
    img = torch.randn(1, 3, 32, 32).repeat(2, 1, 1, 1)
    d = D(img, y)
    assert (d[0] - d[1]).abs() > 1e-4


def test_projection_discriminator_is_psi_of_phi_plus_class_embedding_inner_product(tiny_cfg):
    """D(x, y) = psi(phi(x)) + <embed(y), phi(x)> (Miyato & Koyama 2018): phi(x) (the pooled features D's
    last linear layer sees) does not depend on y, psi is that linear layer, embed the class embedding."""
    D = Discriminator.from_config(tiny_cfg).eval()  # eval: spectral norm's power iteration stays put
    with torch.no_grad():
        D.embed.parametrizations.weight.original.normal_()  # a non-trivial embedding
    seen = []
    D.linear.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach()))
    x = torch.randn(3, 3, 32, 32)
    labels = [torch.tensor([0, 1, 2]), torch.tensor([9, 4, 4])]
    with torch.no_grad():
        logits = [D(x, y) for y in labels]
    phi = seen[0]
    assert phi.shape == (3, D.embed.weight.shape[1]) and torch.equal(seen[1], phi)  # phi(x) ignores y
    W, b, E = D.linear.weight, D.linear.bias, D.embed.weight  # the spectrally normalised weights
    psi = phi @ W.T.squeeze(1) + b
    for y, out in zip(labels, logits):
        by_hand = psi + (E[y] * phi).sum(1)
        torch.testing.assert_close(out, by_hand, rtol=1e-5, atol=1e-4)
    # the class enters only through the inner product: D(x, y) - D(x, y') = <embed(y) - embed(y'), phi(x)>
    torch.testing.assert_close(logits[0] - logits[1], ((E[labels[0]] - E[labels[1]]) * phi).sum(1), rtol=1e-5, atol=1e-4)


def test_hierarchical_z_splits_z_into_chunks_beside_a_shared_class_embedding(tiny_cfg):
    cfg = tiny_cfg.replace(model={"hierarchical_z": True, "z_dim": 120, "shared_dim": 32})
    G = Generator.from_config(cfg)
    assert G.z_chunk == 30 and G.shared.weight.shape == (10, 32)
    x = G(torch.randn(3, 120), torch.tensor([0, 1, 2]))
    assert x.shape == (3, 3, 32, 32)


def test_hinge_step_changes_weights(tiny_cfg):
    """One update of the production training step (GANStep with the config's hinge loss, SAGAN section 4,
    and its Adam settings, on an accelerate Accelerator on CPU) moves the weights of both networks."""
    assert tiny_cfg.train.loss == "hinge"
    step, stream = build_step(tiny_cfg.replace(train={"batch_size": 8}))
    g0, d0 = copy.deepcopy(step.G_raw.state_dict()), copy.deepcopy(step.D_raw.state_dict())
    step(1, stream.next)
    for net, before in ((step.G_raw, g0), (step.D_raw, d0)):
        changed = [k for k, v in net.state_dict().items() if k.endswith("original") and not torch.equal(v, before[k])]
        assert changed, f"{type(net).__name__} weights did not change"


def test_deterministic_on_cpu_for_fixed_seed(tiny_cfg):
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        G = Generator.from_config(tiny_cfg)
        outs.append(G(torch.randn(2, G.z_dim), torch.tensor([1, 2])))
    assert torch.equal(outs[0], outs[1])


def test_ema_copy_by_deepcopy_after_forward(tiny_cfg):
    G = Generator.from_config(tiny_cfg)
    G(torch.randn(2, G.z_dim), torch.tensor([0, 1]))
    G_ema = copy.deepcopy(G).eval()
    G.eval()
    z, y = torch.randn(2, G.z_dim), torch.tensor([0, 1])
    assert torch.equal(G(z, y), G_ema(z, y))


def test_channels_last_matches_and_bf16_autocast_stays_finite_with_fp32_power_iteration(tiny_cfg):
    G, D = Generator.from_config(tiny_cfg).eval(), Discriminator.from_config(tiny_cfg).eval()
    z, y = torch.randn(2, G.z_dim), torch.tensor([0, 1])
    with torch.no_grad():
        ref = G(z, y)
        G_cl = G.to(memory_format=torch.channels_last)
        torch.testing.assert_close(G_cl(z, y), ref, rtol=1e-4, atol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            xb = G(z, y)
            db = D(xb, y)
    assert torch.isfinite(xb).all() and torch.isfinite(db).all()
    # spectral norm's power iteration stays in fp32 under autocast
    D.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        D(ref, y)
    for _, m in D.named_modules():
        if hasattr(m, "parametrizations"):
            assert m.parametrizations.weight[0]._u.dtype == torch.float32


@pytest.mark.slow
def test_torch_compile_without_graph_breaks(tiny_cfg):
    import torch._dynamo as dynamo

    G = Generator.from_config(tiny_cfg)
    explanation = dynamo.explain(G)(torch.randn(2, G.z_dim), torch.tensor([0, 1]))
    assert explanation.graph_break_count == 0, explanation.break_reasons


# --------------------------------------------------------------------------------------------------
# the paper's ablations: SN in G off, residual blocks in place of attention (SAGAN 5.1, Table 1)


def _sn_layers(module):
    return [m for m in module.modules() if hasattr(m, "parametrizations")]


def test_g_sn_false_leaves_g_plain_and_d_normalised(tiny_cfg):
    cfg = tiny_cfg.replace(model={"g_sn": False})
    G, D = Generator.from_config(cfg), Discriminator.from_config(cfg)
    assert _sn_layers(G) == []
    assert not any("parametrizations" in k for k in G.state_dict())
    convs = [m for m in D.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.Embedding))]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)
    assert len(_sn_layers(Generator.from_config(tiny_cfg))) > 10  # the default G is normalised
    x = G(torch.randn(2, cfg.model.z_dim), torch.tensor([0, 1]))
    assert x.shape == (2, 3, 32, 32)


def test_residual_variant_has_a_block_where_attention_was_and_no_gamma(tiny_cfg):
    cfg = tiny_cfg.replace(model={"g_block_type": "residual", "d_block_type": "residual"})
    G, D = Generator.from_config(cfg), Discriminator.from_config(cfg)
    for net in (G, D):
        assert len(net.attn) == 0 and list(net.residual) == ["16"]
        assert not any("gamma" in k for k in net.state_dict())
        assert any(k.startswith("residual.16.conv1") for k in net.state_dict())
    z, y = torch.randn(2, cfg.model.z_dim), torch.tensor([0, 1])
    assert D(G(z, y), y).shape == (2,)
    # the residual block acts: removing it changes G's output (attention starts as the identity instead)
    G.eval()
    with torch.no_grad():
        a = G(z, y)
        G.residual["16"].conv2.parametrizations.weight.original.zero_()
        G.residual["16"].conv2.bias.zero_()
        b = G(z, y)
    assert not torch.equal(a, b)


def test_d_shortcut_relu_changes_only_blocks_after_the_first(tiny_cfg):
    torch.manual_seed(0)
    D = Discriminator.from_config(tiny_cfg).eval()
    torch.manual_seed(0)
    D2 = Discriminator.from_config(tiny_cfg.replace(model={"d_shortcut_relu": True})).eval()
    assert D.state_dict().keys() == D2.state_dict().keys()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(D.blocks[0](x), D2.blocks[0](x))
        h = torch.randn(2, 16, 16, 16)
        assert not torch.allclose(D.blocks[1](h), D2.blocks[1](h))
        assert torch.allclose(D2.blocks[1](h), D2.blocks[1](torch.relu(h)))  # the shortcut sees relu(h)


def test_networks_are_built_from_the_model_config():
    """Generator / Discriminator take the model section (or a whole config); from_config is the same."""
    cfg = load_config("demo", overrides=["model.g_ch=16", "model.d_ch=16"])
    for cls in (Generator, Discriminator):
        torch.manual_seed(0)
        a = cls(cfg.model).state_dict()
        torch.manual_seed(0)
        b = cls.from_config(cfg).state_dict()
        torch.manual_seed(0)
        c = cls(cfg).state_dict()
        assert a.keys() == b.keys() == c.keys()
        assert all(torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]) for k in a)
    from sagan.config import ModelConfig
    from sagan.models.networks import model_section

    assert model_section(None) == ModelConfig() == load_config("imagenet128").model  # no config: the paper's
    with pytest.raises(TypeError, match="expected a ModelConfig or a Config"):
        Generator(32)
