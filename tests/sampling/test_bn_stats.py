"""BN statistics at sampling time (sagan.sampling.bn_stats): running, per-batch and standing statistics."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from sagan.sampling.bn_stats import (BN_MODES, STANDING_SEED_OFFSET, batch_norms, bn_mode_description, prepare_generator,
                            sampling_mode)
from sagan.errors import UserError
from sagan.models.layers import ConditionalBatchNorm2d
from sagan.models import Generator
from sagan.sampling.draw import generate
from sagan.sampling.latents import class_balanced_labels, sample_latents

from model_utils import spread_class_conditioning


def _generator(cfg, hierarchical: bool = False) -> Generator:
    """A small G with label-dependent output and running statistics away from their init (0 and 1)."""
    if hierarchical:
        cfg = cfg.replace(model={"hierarchical_z": True, "shared_dim": 16})
    G = Generator.from_config(cfg)
    if not hierarchical:  # the hierarchical G's CBN gains are SN linear maps, label-dependent already
        spread_class_conditioning(G, std=0.5)
    with torch.no_grad():
        G.train()
        for _ in range(3):
            G(torch.randn(16, G.z_dim) * 2, torch.arange(16) % G.num_classes)
    return G.eval()


@pytest.fixture(params=[False, True], ids=["embedded-cbn", "hierarchical-z"])
def G(tiny_cfg, request):
    return _generator(tiny_cfg, request.param)


def _inputs(G, n=12, seed=5):
    return sample_latents(n, G.z_dim, seed), class_balanced_labels(n, range(G.num_classes))


def _pixels(G, z, y, batch_size=4):
    return torch.cat([b for b, _ in generate(G, z, y, batch_size)])


def _state(G):
    return {k: v.detach().clone() for k, v in G.state_dict().items()}


def _is_bn_buffer(G, key):
    module = G.get_submodule(key.rsplit(".", 1)[0])
    return isinstance(module, _BatchNorm)


@pytest.mark.parametrize("mode", BN_MODES)
def test_sampling_is_deterministic_for_a_seed_in_every_mode(G, mode):
    z, y = _inputs(G)
    a = prepare_generator(copy.deepcopy(G), mode, standing_batches=3, batch_size=8, seed=1)
    b = prepare_generator(copy.deepcopy(G), mode, standing_batches=3, batch_size=8, seed=1)
    first = _pixels(a, z, y)
    assert torch.equal(first, _pixels(a, z, y))  # twice from the same module
    assert torch.equal(first, _pixels(b, z, y))  # and from an independently prepared one
    assert getattr(a, "bn_stats_mode") == mode


def test_batch_mode_uses_each_batchs_own_statistics(G):
    z, y = _inputs(G, n=8)
    running = prepare_generator(copy.deepcopy(G), "running")
    batch = prepare_generator(copy.deepcopy(G), "batch")
    with torch.no_grad(), sampling_mode(batch):
        out = batch(z, y)
    # the same network by hand: eval mode, every BN normalising with the batch's biased variance
    manual = copy.deepcopy(G).eval()
    for m in batch_norms(manual):
        m.forward = (lambda m: lambda x: F.batch_norm(x, None, None, m.weight, m.bias, True, 0.0, m.eps))(m)
    with torch.no_grad():
        expected = manual(z, y)
        from_running = running(z, y)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert (out - from_running).abs().mean() > 1e-3
    # through generate: another batch split gives other batches, so other pixels; running stats do not care
    assert not torch.equal(_pixels(batch, z, y, 4), _pixels(batch, z, y, 8))
    assert (_pixels(running, z, y, 4).int() - _pixels(running, z, y, 8).int()).abs().max() <= 1


@pytest.mark.parametrize("mode", BN_MODES)
def test_spectral_norm_state_and_weights_are_untouched(G, mode):
    before = _state(G)
    sn_keys = [k for k in before if k.endswith(("_u", "_v"))]
    assert sn_keys  # the power iteration's vectors exist to be checked
    prepared = prepare_generator(G, mode, standing_batches=2, batch_size=8)
    z, y = _inputs(G)
    _pixels(prepared, z, y)
    after = _state(G)
    for k, v in before.items():
        if mode == "standing" and _is_bn_buffer(G, k):
            continue  # the one thing standing statistics are meant to replace
        assert torch.equal(v, after[k]), f"{mode} mode changed {k}"


def test_generate_restores_every_modules_train_flag(G):
    prepare_generator(G, "batch")
    G.train()
    z, y = _inputs(G, n=4)
    _pixels(G, z, y)
    assert all(m.training for m in G.modules())
    G.eval()
    _pixels(G, z, y)
    assert not any(m.training for m in G.modules())
    assert all(m.track_running_stats for m in batch_norms(G))


def test_standing_statistics_are_the_average_of_the_batch_statistics(G):
    seen: dict[torch.nn.Module, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def record(module, args):
        x = args[0]
        seen.setdefault(module, []).append((x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=True)))

    norms = batch_norms(G)
    assert len(norms) == 2 * len(G.blocks) + 1  # the conditional BNs and the plain output BN
    assert any(isinstance(m, ConditionalBatchNorm2d) for m in G.modules())
    momenta = [m.momentum for m in norms]
    hooks = [m.register_forward_pre_hook(record) for m in norms]
    prepare_generator(G, "standing", standing_batches=5, batch_size=6, seed=3)
    for h in hooks:
        h.remove()
    for m in norms:
        stats = seen[m]
        assert len(stats) == 5
        torch.testing.assert_close(m.running_mean, torch.stack([s[0] for s in stats]).mean(0), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(m.running_var, torch.stack([s[1] for s in stats]).mean(0), rtol=1e-5, atol=1e-6)
        assert int(m.num_batches_tracked) == 5
    assert [m.momentum for m in norms] == momenta  # restored for whoever trains this module later
    assert not any(m.training for m in G.modules())  # and it samples in eval mode


def test_standing_statistics_depend_on_seed_and_truncation_only_as_asked(tiny_cfg):
    G = _generator(tiny_cfg)

    def stats(**kw):
        g = prepare_generator(copy.deepcopy(G), "standing", standing_batches=2, batch_size=8, **kw)
        return torch.cat([m.running_var for m in batch_norms(g)])

    assert torch.equal(stats(seed=0), stats(seed=0))
    assert not torch.equal(stats(seed=0), stats(seed=1))
    assert not torch.equal(stats(seed=0), stats(seed=0, truncation=0.5))  # BigGAN: per truncation value
    assert STANDING_SEED_OFFSET != 0  # the statistics never reuse the sampled latents of the same seed


def test_preparing_again_starts_from_the_checkpoint_statistics(G):
    checkpoint_stats = [m.running_mean.clone() for m in batch_norms(G)]
    prepare_generator(G, "standing", standing_batches=2, batch_size=8)
    assert not torch.equal(batch_norms(G)[0].running_mean, checkpoint_stats[0])
    prepare_generator(G, "running")
    for m, before in zip(batch_norms(G), checkpoint_stats):
        assert torch.equal(m.running_mean, before)
    assert G.bn_stats_mode == "running"


def test_modes_are_described_and_checked():
    assert "running statistics" in bn_mode_description("running")
    assert "per-batch" in bn_mode_description("batch")
    assert "standing statistics over 7 batches" in bn_mode_description("standing", 7)
    with pytest.raises(UserError, match="mode 'train' is unknown; use one of running, batch, standing"):
        bn_mode_description("train")
    with pytest.raises(UserError, match="at least 1 batch"):
        prepare_generator(torch.nn.Linear(1, 1), "standing", standing_batches=0)
