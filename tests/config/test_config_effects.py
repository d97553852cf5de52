"""A key the user set that does nothing in the resolved config is refused (another key overrides it) or
reported in one line (its feature is off); keys the presets set are defaults and never reported."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sagan.config import load_config
from sagan.config_effects import check_user_keys, dormant_key_notes, user_set_keys
from sagan.errors import ConfigError


def _check(config: str, overrides: list[str]) -> list[str]:
    cfg = load_config(config, overrides=overrides)
    return check_user_keys(cfg, user_set_keys(config, overrides), config)


@pytest.mark.parametrize("config, overrides, match", [
    ("uncond64", ["model.g_ch=16"], r"model.g_ch=16 has no effect: model.g_widths \[1024, 512, 256, 128, 64\] "
                                    r"\(from preset tiny_imagenet\) fixes G's channels; set model.g_widths instead"),
    ("cifar10", ["model.d_ch=32"], r"model.d_ch=32 has no effect: model.d_widths .* fixes D's channels"),
    ("demo", ["model.g_ch=16", "model.g_widths=[128,128,64,32]"], r"model.g_ch=16 has no effect: .*which you set too"),
])
def test_a_width_multiplier_under_pinned_widths_is_refused(config, overrides, match):
    with pytest.raises(ConfigError, match=match):
        _check(config, overrides)


def test_the_refusal_names_widths_that_do_what_was_asked():
    with pytest.raises(ConfigError) as e:
        _check("uncond64", ["model.g_ch=16"])
    suggested = str(e.value).split("--set ")[1].rstrip(")")
    from sagan.architecture import g_widths

    assert _check("uncond64", [suggested]) == []
    assert list(load_config("uncond64", overrides=[suggested]).model.g_widths) == g_widths(64, 16)
    assert _check("uncond64", ["model.g_widths=[]", "model.g_ch=16"]) == []  # cleared widths: g_ch decides


@pytest.mark.parametrize("overrides, note", [
    (["train.ema=false", "train.ema_decay=0.9"], "note: train.ema_decay has no effect: train.ema is false"),
    (["train.augment_policy=color"], "note: train.augment_policy has no effect: it is DiffAugment's policy and "
                                     "train.augment is none"),
    (["train.augment=ada", "train.augment_policy=color"], "train.augment is ada; set train.augment=diffaugment"),
    (["train.ada_target=0.5", "train.ada_kimg=100"], "note: train.ada_target, train.ada_kimg have no effect: "
                                                     "train.augment is none, not ada"),
    (["train.lecam_decay=0.9", "train.lecam_start=5"], "train.lecam_weight is 0 (LeCam off)"),
    (["model.shared_dim=64"], "model.hierarchical_z is false"),
    (["train.fid_num_samples=100"], "train.fid_every is 0 (no evaluations during training)"),
    (["data.ref_stats=ref.npz"], "note: data.ref_stats has no effect: train.fid_every is 0"),
    (["data.subset_seed=3"], "data.subset is null"),
    (["data.path=/x", "data.demo_size=64"], "note: data.demo_size has no effect: it sizes the built-in demo dataset"),
    (["model.g_attn=[]", "model.g_block_type=residual"],
     "note: model.g_block_type has no effect: model.g_attn is empty"),
    (["model.g_attn=[]", "model.d_attn=[]", "model.attn_pool=false"], "the config has no self-attention layer"),
])
def test_a_key_whose_feature_is_off_gets_one_note(overrides, note):
    notes = _check("demo", overrides)
    assert len(notes) == 1 and note in notes[0]


@pytest.mark.parametrize("overrides", [
    ["train.augment=diffaugment", "train.augment_policy=color"],
    ["train.augment=ada", "train.ada_target=0.5"],
    ["train.lecam_weight=0.3", "train.lecam_start=5"],
    ["train.ema_decay=0.9"],
    ["data.subset=0.5", "data.subset_seed=3"],
])
def test_keys_that_take_effect_get_no_note(overrides):
    assert _check("demo", overrides) == []


def test_preset_values_are_defaults_not_reported(tmp_path):
    """cifar10 pins widths and keeps ema_decay with ema false; no user key, nothing to say. A user YAML on
    top counts as set by the user."""
    cfg = load_config("cifar10")
    assert dormant_key_notes(cfg, user_set_keys("cifar10")) == [] and _check("cifar10", []) == []
    own = tmp_path / "mine.yaml"
    own.write_text("base: cifar10\ntrain:\n  ema_decay: 0.99\n")
    assert user_set_keys(str(own)) == {"train.ema_decay"}
    assert _check(str(own), []) == ["note: train.ema_decay has no effect: train.ema is false (no EMA generator); "
                                    "set train.ema=true to use it"]


def test_train_py_refuses_g_ch_on_uncond64_in_one_line(tmp_path):
    from sagan.commands.train import main as train_cli

    r = CliRunner().invoke(train_cli, ["--config", "uncond64", "--set", "model.g_ch=16", "--outdir",
                                       str(tmp_path / "run"), "--max-steps", "1"])
    assert r.exit_code != 0 and not (tmp_path / "run").exists()
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: model.g_ch=16 has no effect") and "Traceback" not in r.output
