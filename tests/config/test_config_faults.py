"""Config faults: NaN/Inf keys, duplicate YAML keys, alias bombs, huge and binary files, and
checkpoints whose fields are shared-reference bombs."""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch

from sagan.config import SECTIONS, load_config
from sagan.config_files import MAX_CONFIG_BYTES
from sagan.errors import CheckpointError, ConfigError, short_repr

BOMB = "\n".join(["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"] +
                 [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
                  f"*a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 10)])


def _numeric_keys():
    for sname, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            if f.type in ("int", "float", int, float):
                yield f"{sname}.{f.name}"


@pytest.mark.parametrize("key", list(_numeric_keys()))
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_every_numeric_key_refuses_nan_and_inf_naming_the_key(key, value):
    with pytest.raises(ConfigError) as e:
        load_config("demo", overrides=[f"{key}={value}"])
    msg = str(e.value)
    assert key in msg and "\n" not in msg and ("finite" in msg or "integer" in msg), msg


def test_nan_bn_eps_names_bn_eps_not_the_learning_rates():
    with pytest.raises(ConfigError, match=r"model\.bn_eps") as e:
        load_config("demo", overrides=["model.bn_eps=.nan"])
    assert "lr" not in str(e.value)


def test_duplicate_yaml_keys_are_an_error_naming_key_and_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("base: demo\ntrain:\n  lr_g: 1.0e-4\n  lr_d: 4.0e-4\n  lr_g: 2.0e-4\n")
    with pytest.raises(ConfigError, match=r"c\.yaml line 5: .*duplicate key 'lr_g'"):
        load_config(p)
    q = tmp_path / "d.yaml"
    q.write_text("base: demo\ntrain: {lr_g: 1.0e-4}\ntrain: {lr_d: 1.0e-4}\n")
    with pytest.raises(ConfigError, match="duplicate key 'train'"):
        load_config(q)


def test_anchors_and_aliases_of_normal_size_still_work(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("base: demo\nmodel:\n  g_attn: &a [16]\n  d_attn: *a\n")
    cfg = load_config(p)
    assert cfg.model.g_attn == (16,) and cfg.model.d_attn == (16,)


def test_alias_bomb_in_a_config_file_is_refused_quickly(tmp_path):
    p = tmp_path / "bomb.yaml"
    p.write_text("base: demo\n" + BOMB + "\nmodel:\n  g_attn: *a9\n")
    t0 = time.time()
    with pytest.raises(ConfigError, match="bomb.yaml.*alias") as e:
        load_config(p)
    assert time.time() - t0 < 5 and len(str(e.value)) < 400


def test_alias_bomb_in_set_is_refused_quickly():
    levels = ["&l0 [x, x, x, x, x, x, x, x, x, x]"]  # one anchor per level, each level 10 aliases of the last
    for i in range(1, 9):
        levels.append(f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    t0 = time.time()
    with pytest.raises(ConfigError, match="alias") as e:
        load_config("demo", overrides=["model.g_attn=[" + ", ".join(levels) + "]"])
    assert time.time() - t0 < 5 and len(str(e.value)) < 400


def test_nested_values_in_messages_are_cut_short():
    with pytest.raises(ConfigError) as e:
        load_config("demo", overrides=["model.g_attn=[[" + ",".join(["12345"] * 2000) + "]]"])
    assert len(str(e.value)) < 300 and "model.g_attn" in str(e.value)
    nested = [1]
    for _ in range(40):
        nested = [nested, nested]  # 2**40 leaves by reference
    assert len(short_repr(nested)) <= 80


def test_name_must_be_a_string():
    with pytest.raises(ConfigError, match="name"):
        load_config("demo", overrides={"name": [[1, 2], [3]]})


def test_huge_config_file_is_refused_before_reading(tmp_path):
    p = tmp_path / "big.yaml"
    with open(p, "w") as f:
        f.write("base: demo\n# " + "x" * (MAX_CONFIG_BYTES + 10) + "\n")
    with pytest.raises(ConfigError, match=r"big\.yaml.*MB"):
        load_config(p)
    child = tmp_path / "child.yaml"
    child.write_text("base: big.yaml\n")
    with pytest.raises(ConfigError, match=r"big\.yaml.*MB"):
        load_config(child)


@pytest.mark.parametrize("as_base", [False, True])
def test_binary_config_file_is_one_line(tmp_path, as_base):
    p = tmp_path / "weights.bin"
    p.write_bytes(bytes(range(256)) * 10)
    target = p
    if as_base:
        target = tmp_path / "c.yaml"
        target.write_text("base: weights.bin\n")
    with pytest.raises(ConfigError, match=r"weights\.bin.*not a (YAML )?text file") as e:
        load_config(target)
    assert "\n" not in str(e.value)


def test_train_cli_on_binary_config_exits_2(tmp_path):
    import subprocess
    import sys

    p = tmp_path / "x.pt"
    p.write_bytes(b"PK\x03\x04\xff\xfe\x00\x01" * 100)
    res = subprocess.run([sys.executable, "-m", "sagan.commands.train", "--config", str(p)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr and "x.pt" in res.stderr


def _bomb_list(depth: int = 60):
    nested = [0]
    for _ in range(depth):
        nested = [nested, nested]
    return nested


@pytest.mark.parametrize("field", ["step", "config_name", "config_key", "version"])
def test_checkpoint_with_a_shared_reference_bomb_is_one_short_line(tiny_cfg, tmp_path, field):
    from sagan.checkpoint import load_checkpoint
    from sagan.models import load_generator
    from sagan.models import Discriminator, Generator

    G, D = Generator.from_config(tiny_cfg), Discriminator.from_config(tiny_cfg)
    cfg = tiny_cfg.to_dict()
    payload = {"format": "sagan-checkpoint", "version": 1, "step": 3, "config": cfg, "G": G.state_dict(),
               "D": D.state_dict(), "G_ema": None, "opt_G": None, "opt_D": None, "rng": None, "data": None}
    if field == "step":
        payload["step"] = _bomb_list()
    elif field == "version":
        payload["version"] = _bomb_list()
    elif field == "config_name":
        cfg["name"] = _bomb_list()
    else:
        cfg["model"]["g_attn"] = _bomb_list()
    p = tmp_path / "bomb.pt"
    torch.save(payload, p)
    t0 = time.time()
    with pytest.raises(CheckpointError) as e:
        load_generator(p)
    assert time.time() - t0 < 10 and len(str(e.value)) < 500 and "bomb.pt" in str(e.value)
    if field == "step":
        with pytest.raises(CheckpointError, match="field step is malformed"):
            load_checkpoint(p)
