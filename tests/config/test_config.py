"""Config loading: presets, overrides, round trips and one-line errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sagan.config import Config, d_channel_mults, g_channel_mults, load_config
from sagan.errors import ConfigError


def test_paper_preset_matches_the_paper():
    cfg = load_config("imagenet128")
    m, t = cfg.model, cfg.train
    assert (m.resolution, m.num_classes, m.z_dim, m.g_ch, m.d_ch) == (128, 1000, 128, 64, 64)
    assert m.g_attn == (64,) and m.d_attn == (64,) and m.attn_mode == "embedded_gaussian"
    assert (t.batch_size, t.lr_g, t.lr_d, t.beta1, t.beta2, t.d_steps, t.loss) == (256, 1e-4, 4e-4, 0.0, 0.9, 1, "hinge")
    assert (t.ema_decay, t.ema_start) == (0.9999, 2000)


def test_feat32_and_demo_presets():
    f32 = load_config("imagenet128_feat32")
    assert f32.model.g_attn == (32,) and f32.model.d_attn == (32,)
    assert dataclasses.replace(f32.model, g_attn=(64,), d_attn=(64,)) == load_config("imagenet128").model
    demo = load_config("demo")
    assert (demo.model.resolution, demo.model.num_classes, demo.data.path) == (32, 10, None)


def test_channel_multipliers_of_the_official_release():
    assert g_channel_mults(128) == [(16, 16), (16, 8), (8, 4), (4, 2), (2, 1)]
    assert d_channel_mults(128) == [(0, 1, True), (1, 2, True), (2, 4, True), (4, 8, True), (8, 16, True), (16, 16, False)]


def test_config_is_frozen_and_round_trips_through_a_checkpoint(tmp_path):
    cfg = load_config("demo", overrides=["train.lr_g=2e-4", "model.g_attn=[8,16]"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.lr_g = 1.0
    assert cfg.train.lr_g == 2e-4 and cfg.model.g_attn == (8, 16)
    torch.save({"config": cfg.to_dict()}, tmp_path / "c.pt")
    back = Config.from_dict(torch.load(tmp_path / "c.pt", weights_only=True)["config"])
    assert back == cfg


def test_overrides_as_mapping_and_yaml_values():
    cfg = load_config("demo", overrides={"data.path": "/x", "train.mixed_precision": "bf16", "model.d_attn": 16})
    assert cfg.data.path == "/x" and cfg.train.mixed_precision == "bf16" and cfg.model.d_attn == (16,)
    assert load_config("demo", overrides=["data.path=null"]).data.path is None


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.g_chh=8"], r"unknown key 'g_chh' in section 'model' \(did you mean 'g_ch'\?\)"),
        (["optim.lr=1"], "expected section.key"),
        (["train.lr_g"], "expected key=value"),
        (["train.batch_size=abc"], "train.batch_size: expected an integer, got 'abc'"),
        (["train.ema=maybe"], "expected true or false"),
        (["model.g_ch=12"], "model.g_ch must be a positive multiple of 8"),
        (["model.g_attn=[24]"], r"model.g_attn has 24px but the G at 32px has blocks at \[8, 16, 32\]px"),
        (["model.d_attn=[32]"], "model.d_attn has 32px"),
        (["model.resolution=100"], "power of two"),
        (["model.attn_mode=cosine"], "attn_mode must be one of"),
        (["train.beta2=1.0"], r"beta2 must be in \[0, 1\)"),
        (["train.batch_size=10", "train.grad_accum=3"], "divisible by train.grad_accum"),
        (["train.mixed_precision=fp8"], "mixed_precision must be one of"),
        (["train.lr_d=-1"], "train.lr_d must be > 0"),
    ],
)
def test_config_errors_are_clear_one_liners(overrides, message):
    with pytest.raises(ConfigError, match=message) as e:
        load_config("demo", overrides=overrides)
    assert "\n" not in str(e.value)


def test_missing_unparsable_and_unknown_config_files_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found; give a YAML path or a preset"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("model:\n  resolution: 64\ntraining:\n  lr: 1\n")
    with pytest.raises(ConfigError, match="unknown section"):
        load_config(unknown)
    partial = tmp_path / "partial.yaml"
    partial.write_text("model:\n  resolution: 64\n  g_attn: [32]\n  d_attn: [32]\n")
    cfg = load_config(partial)
    assert cfg.name == "partial" and cfg.model.resolution == 64 and cfg.train.lr_d == 4e-4


# --------------------------------------------------------------------------------------------------
# base: inheritance and packaged presets


def test_base_inheritance_resolves_chains(tmp_path):
    (tmp_path / "a.yaml").write_text("base: demo\ntrain:\n  lr_g: 3.0e-4\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yaml").write_text("base: ../a.yaml\nname: bee\nmodel:\n  g_attn: [8]\n")
    cfg = load_config(tmp_path / "sub" / "b.yaml")
    demo = load_config("demo")
    assert cfg.name == "bee" and cfg.train.lr_g == 3e-4 and cfg.model.g_attn == (8,)
    assert cfg.train.lr_d == demo.train.lr_d and cfg.model.resolution == 32  # inherited from demo
    assert load_config(tmp_path / "a.yaml").name == "a"  # a name is never inherited


def test_base_cycles_and_missing_bases_are_one_line(tmp_path):
    (tmp_path / "x.yaml").write_text("base: y.yaml\n")
    (tmp_path / "y.yaml").write_text("base: x.yaml\n")
    with pytest.raises(ConfigError, match="config base cycle: .*x.yaml -> .*y.yaml -> .*x.yaml") as e:
        load_config(tmp_path / "x.yaml")
    assert "\n" not in str(e.value)
    (tmp_path / "m.yaml").write_text("base: nowhere\n")
    with pytest.raises(ConfigError, match=r"'nowhere' \(base of .*m.yaml\) not found") as e:
        load_config(tmp_path / "m.yaml")
    assert "\n" not in str(e.value)
    (tmp_path / "n.yaml").write_text("base: [1]\n")
    with pytest.raises(ConfigError, match="base must be a preset name"):
        load_config(tmp_path / "n.yaml")


def test_feat32_preset_states_only_what_differs():
    from sagan.config import config_chain

    chain = config_chain("imagenet128_feat32")
    assert [p.stem for p, _ in chain] == ["imagenet128", "imagenet128_feat32"]
    assert set(chain[1][1]["model"]) == {"g_attn", "d_attn"}


@pytest.mark.parametrize("key, value", [("g_block_type", "conv"), ("d_block_type", "mlp")])
def test_block_type_choices(key, value):
    with pytest.raises(ConfigError, match=f"model.{key} must be one of attention, residual"):
        load_config("demo", overrides=[f"model.{key}={value}"])


def test_loss_must_be_registered():
    with pytest.raises(ConfigError, match="train.loss must be one of hinge, ns, wasserstein"):
        load_config("demo", overrides=["train.loss=lsgan"])


def test_a_built_package_ships_every_preset(tmp_path):
    """What ``pip install .`` copies (setuptools' build_py with the package data of setup.cfg) holds every
    preset, and the built package finds and loads them all from its own folder, outside the source tree."""
    import os
    import subprocess
    import sys

    from sagan.config import CONFIG_DIR, preset_names

    root = CONFIG_DIR.parent.parent
    build = tmp_path / "lib"
    subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py", "--build-lib",
                    str(build)], cwd=root, check=True, capture_output=True, timeout=120)
    shipped = sorted(str(p.relative_to(build / "sagan" / "configs")) for p in (build / "sagan" / "configs").rglob("*.yaml"))
    assert shipped == sorted(str(p.relative_to(CONFIG_DIR)) for p in CONFIG_DIR.rglob("*.yaml"))
    probe = ("import sagan.config as c; names = c.preset_names(); [c.load_config(n) for n in names]; "
             "print(c.CONFIG_DIR); print(len(names))")
    env = {**os.environ, "PYTHONPATH": str(build)}
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, check=True, capture_output=True,
                         text=True, timeout=120).stdout.split()
    assert out == [str(build / "sagan" / "configs"), str(len(preset_names()))]
