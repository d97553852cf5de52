"""sagan-export on bad input: one line each (what, where, what to do), exit 2, nothing written; an export
that does not reproduce the checkpoint's generator is refused."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch

from sagan.config import load_config
from sagan.errors import UserError
from sagan.export import formats
from sagan.models import Generator

from export_utils import one_error_line, run, write_run

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:FutureWarning")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("run"), load_config("demo", overrides=["model.g_ch=16", "model.d_ch=16"]))


def test_a_mismatch_is_an_error_and_writes_nothing(tiny_run, tmp_path, monkeypatch):
    spec = formats.FORMATS["torchscript"]
    off = dataclasses.replace(spec, images=lambda artifact, batch: spec.images(artifact, batch) + 1e-3)
    out = tmp_path / "G.pt"
    with formats.FORMATS.replaced("torchscript", off):
        line = one_error_line(run("--checkpoint", tiny_run, "--format", "torchscript", "--out", out))
    assert "differs from the checkpoint's generator by up to 0.001" in line and "nothing was written" in line
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------------
# bad input: one line each, nothing written


def test_a_file_that_is_not_a_checkpoint_is_one_line_through_python_m(tmp_path):
    bad = tmp_path / "notes.pt"
    bad.write_text("not a checkpoint\n")
    r = subprocess.run([sys.executable, "-m", "sagan.commands.export", "--checkpoint", str(bad), "--format", "onnx",
                        "--out", str(tmp_path / "G.onnx")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "notes.pt" in lines[0], r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.pt"]


@pytest.mark.parametrize("kind", ["bare_state_dict", "studiogan_style", "checkpoint_without_G"])
def test_a_discriminator_only_file_is_one_line(tiny_run, tmp_path, kind):
    D_state = torch.load(tiny_run / "checkpoints" / "last.pt", weights_only=True)["D"]
    path = tmp_path / "D.pt"
    if kind == "bare_state_dict":
        torch.save(D_state, path)
    elif kind == "studiogan_style":
        torch.save({"state_dict": D_state, "seed": 0, "best_fid": 50.0}, path)
    else:
        ckpt = torch.load(tiny_run / "checkpoints" / "last.pt", weights_only=True)
        del ckpt["G"], ckpt["G_ema"]
        torch.save(ckpt, path)
    line = one_error_line(run("--checkpoint", path, "--format", "onnx", "--out", tmp_path / "G.onnx"))
    assert str(path) in line and "generator" in line
    assert not (tmp_path / "G.onnx").exists()


@pytest.mark.parametrize("fmt,target", [("onnx", "G.onnx"), ("hf", "G-hf"), ("torchscript", "sub/G.pt")])
def test_an_unwritable_out_is_one_line_before_any_work(tiny_run, read_only_dir, monkeypatch, fmt, target):
    import sagan.export.exporter as exporter

    def no_work(*args, **kwargs):
        raise AssertionError("loaded the checkpoint before checking --out")

    monkeypatch.setattr(exporter, "load_source", no_work)
    line = one_error_line(run("--checkpoint", tiny_run, "--format", fmt, "--out", read_only_dir / target))
    assert "Read-only file system" in line and "pick another --out" in line


@pytest.mark.parametrize("fmt,target", [("onnx", "G.onnx"), ("hf", "G-hf")])
def test_a_full_disk_is_one_line_and_leaves_nothing(tiny_run, small_disk, fmt, target):
    disk = small_disk("256k")  # the tiny generator's weights are ~760 kB
    line = one_error_line(run("--checkpoint", tiny_run, "--format", fmt, "--out", disk / target))
    assert str(disk / target) in line and ("disk full" in line or "free" in line)
    assert list(disk.iterdir()) == []


def test_out_of_the_wrong_kind_is_one_line(tiny_run, tmp_path):
    line = one_error_line(run("--checkpoint", tiny_run, "--format", "onnx", "--out", tmp_path))
    assert "is a folder" in line and "G.onnx" in line
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    line = one_error_line(run("--checkpoint", tiny_run, "--format", "hf", "--out", tmp_path / "mine"))
    assert "thesis.tex" in line and "refusing" in line
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_without_the_hub_extra_from_pretrained_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if not installed
    with pytest.raises(UserError, match=r"needs huggingface_hub; pip install 'sagan\[hub\]'"):
        Generator.from_pretrained(tmp_path)


def test_from_pretrained_of_a_folder_that_is_not_an_export_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(UserError, match="has no sagan config.json"):
        Generator.from_pretrained(tmp_path)


def test_help_lists_the_formats_with_examples():
    r = run("--help")
    assert r.exit_code == 0
    assert all(f in r.output for f in ("onnx:", "torchscript:", "hf:", "--bn-stats", "sagan-export --checkpoint"))


# --------------------------------------------------------------------------------------------------
# --out replaces only what sagan-export wrote, never the checkpoint itself


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_users_file_at_out_is_kept_without_overwrite(tiny_run, tmp_path, fmt):
    mine = tmp_path / "G.onnx"
    mine.write_bytes(b"my own model, not from sagan")
    line = one_error_line(run("--checkpoint", tiny_run, "--format", fmt, "--out", mine))
    assert str(mine) in line and "--overwrite" in line
    assert mine.read_bytes() == b"my own model, not from sagan"
    r = run("--checkpoint", tiny_run, "--format", fmt, "--out", mine, "--overwrite")
    assert r.exit_code == 0, r.output
    assert mine.read_bytes() != b"my own model, not from sagan"


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_an_earlier_export_is_replaced_without_overwrite(tiny_run, tmp_path, fmt):
    out = tmp_path / "G.out"
    assert run("--checkpoint", tiny_run, "--format", fmt, "--out", out).exit_code == 0
    r = run("--checkpoint", tiny_run, "--format", fmt, "--out", out, "--no-ema")
    assert r.exit_code == 0, r.output
    assert "raw G" in r.output


def test_the_runs_own_checkpoint_is_not_replaced_without_overwrite(tiny_run, tmp_path):
    import shutil

    run_dir = shutil.copytree(tiny_run, tmp_path / "run")
    last = run_dir / "checkpoints" / "last.pt"
    other = run_dir / "checkpoints" / "step_0000001.pt"
    shutil.copy(last, other)
    before = last.read_bytes()
    line = one_error_line(run("--checkpoint", other, "--format", "onnx", "--out", last))
    assert "last.pt" in line and "not written by sagan" in line and "--overwrite" in line
    assert last.read_bytes() == before


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("how", ["same_path", "run_folder", "hard_link", "symlink"])
def test_the_checkpoint_being_exported_is_never_replaced_even_with_overwrite(tiny_run, tmp_path, fmt, how):
    import os
    import shutil

    run_dir = shutil.copytree(tiny_run, tmp_path / "run")
    last = run_dir / "checkpoints" / "last.pt"
    before = last.read_bytes()
    checkpoint, out = last, last
    if how == "run_folder":
        checkpoint = run_dir
    elif how == "hard_link":  # train.py's last.pt is a hard link to the newest step_*.pt
        out = run_dir / "checkpoints" / "step_0000005.pt"
        os.link(last, out)
    elif how == "symlink":
        out = tmp_path / "G.onnx"
        out.symlink_to(last)
    line = one_error_line(run("--checkpoint", checkpoint, "--format", fmt, "--out", out, "--overwrite"))
    assert "is the checkpoint being exported" in line
    assert last.read_bytes() == before


def test_without_onnx_installed_export_is_one_line_naming_the_extra(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed
    line = one_error_line(run("--checkpoint", tiny_run, "--format", "onnx", "--out", tmp_path / "G.onnx"))
    assert "needs onnx" in line and "pip install 'sagan[export]'" in line
    assert list(tmp_path.iterdir()) == []


def test_the_export_extra_installs_onnx_and_onnxruntime():
    import configparser
    from pathlib import Path

    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[2] / "setup.cfg")
    names = {line.split(">")[0].split("=")[0].strip() for line in cfg["options.extras_require"]["export"].split()}
    assert {"onnx", "onnxruntime"} <= names


# --------------------------------------------------------------------------------------------------
# an untrusted Hugging Face folder: sized and checked before anything is allocated


@pytest.fixture(scope="module")
def hf_folder(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "G-hf"
    assert run("--checkpoint", tiny_run, "--format", "hf", "--out", out).exit_code == 0
    return out


def _tampered(hf_folder, tmp_path, model=None, config_text=None):
    import json
    import shutil

    folder = shutil.copytree(hf_folder, tmp_path / "hf")
    if config_text is not None:
        (folder / "config.json").write_text(config_text)
    if model is not None:
        config = json.loads((folder / "config.json").read_text())
        config["sagan_config"]["model"].update(model)
        (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("model", [{"g_ch": 1_000_000}, {"g_widths": [1_000_000] * 4}, {"z_dim": 10**9},
                                   {"num_classes": 10**9}], ids=["g_ch", "g_widths", "z_dim", "num_classes"])
def test_a_huge_generator_in_config_json_is_refused_before_allocating(hf_folder, tmp_path, monkeypatch, model):
    import time

    from sagan.errors import CheckpointError
    from sagan.models.hub import hub_class

    HubGenerator = hub_class(Generator)  # the class from_pretrained builds

    def no_building(*args, **kwargs):
        raise AssertionError("built the network before sizing it")

    monkeypatch.setattr(HubGenerator, "from_config", no_building)
    folder = _tampered(hf_folder, tmp_path, model=model)
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"describes a generator of .* more than sagan loads") as e:
        Generator.from_pretrained(folder)
    assert time.perf_counter() - started < 10
    assert "\n" not in str(e.value) and f"{next(iter(model))}=" in str(e.value)


def test_weights_that_do_not_match_config_json_are_refused_before_allocating(hf_folder, tmp_path, monkeypatch):
    from sagan.errors import CheckpointError
    from sagan.models.hub import hub_class

    HubGenerator = hub_class(Generator)  # the class from_pretrained builds

    monkeypatch.setattr(HubGenerator, "from_config", lambda *a, **k: pytest.fail("built the network"))
    folder = _tampered(hf_folder, tmp_path, model={"g_ch": 32})  # the weights are of g_ch 16
    with pytest.raises(CheckpointError, match=r"model.safetensors of .*: tensor \S+ has shape .* needs "):
        Generator.from_pretrained(folder)


def test_a_config_json_that_is_not_json_is_one_line_naming_the_file(hf_folder, tmp_path):
    from sagan.errors import CheckpointError

    folder = _tampered(hf_folder, tmp_path, config_text='{"format": "sagan-generator", ')
    with pytest.raises(CheckpointError, match="config.json of .* is not JSON") as e:
        Generator.from_pretrained(folder)
    assert str(folder / "config.json") in str(e.value) and "\n" not in str(e.value)


def test_hf_weights_holding_nan_are_refused_by_name(hf_folder, tmp_path):
    import safetensors.torch as st

    from sagan.errors import CheckpointError

    folder = _tampered(hf_folder, tmp_path)
    state = st.load_file(str(folder / "model.safetensors"))
    state["out_conv.weight"][0, 0, 0, 0] = float("nan")
    st.save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="tensor out_conv.weight holds NaN/Inf"):
        Generator.from_pretrained(folder)
