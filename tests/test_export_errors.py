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
    r = subprocess.run([sys.executable, "-m", "sagan.export", "--checkpoint", str(bad), "--format", "onnx", "--out",
                        str(tmp_path / "G.onnx")], capture_output=True, text=True, timeout=300)
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
