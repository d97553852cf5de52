"""sagan-convert studiogan on malformed files and over existing files: one-line
refusals, nothing written."""

from __future__ import annotations

import pytest
import torch

from convert_utils import CH, CLASSES, G_ATTN, NARROW, RES, STEP, Z, convert, refused, studiogan  # noqa: F401
from sagan.convert.studiogan_files import load_file
from studiogan_reference import save_run


def _damaged_run(tmp_path, studiogan, net: str, change) -> object:
    G_ref, D_ref = studiogan[1], studiogan[3]
    folder = tmp_path / "run"
    save_run(folder, G_ref, D_ref, STEP)
    path = folder / f"model={net}-best-weights-step={STEP}.pth"
    entry = load_file(path)
    entry["state_dict"] = change(dict(entry["state_dict"]))
    torch.save(entry, path)
    return folder


def _first_weight(state: dict) -> str:
    return next(k for k, v in state.items() if v.is_floating_point() and v.dim() >= 2)


def test_non_string_state_dict_key_is_one_line(studiogan, tmp_path):
    folder = _damaged_run(tmp_path, studiogan, "G", lambda s: {**s, 7: torch.zeros(3)})
    refused(convert("--ckpt-dir", folder, "--out", tmp_path / "x.pt", *NARROW), tmp_path / "x.pt",
            "model=G-best-weights-step=1234.pth", "not a string")


def test_nan_weights_are_refused_naming_the_tensor(studiogan, tmp_path):
    def poison(s):
        k = _first_weight(s)
        s[k] = s[k].clone()
        s[k].view(-1)[0] = float("nan")
        return s

    folder = _damaged_run(tmp_path, studiogan, "D", poison)
    msg = refused(convert("--ckpt-dir", folder, "--out", tmp_path / "x.pt", *NARROW), tmp_path / "x.pt",
                  "NaN/Inf")
    assert _first_weight(studiogan[3].state_dict()) in msg


def test_integer_weights_are_refused_naming_the_tensor(studiogan, tmp_path):
    def to_int(s):
        k = _first_weight(s)
        s[k] = s[k].round().to(torch.int64)
        return s

    folder = _damaged_run(tmp_path, studiogan, "G", to_int)
    refused(convert("--ckpt-dir", folder, "--out", tmp_path / "x.pt", *NARROW), tmp_path / "x.pt",
            "int64", "floating")


def test_g_and_d_with_different_class_counts_are_one_line(studiogan, tmp_path):
    from studiogan_reference import RefGenerator

    torch.manual_seed(5)
    G_other = RefGenerator(RES, CLASSES + 2, Z, CH, G_ATTN)  # a G of another run: 12 classes
    folder = save_run(tmp_path / "run", G_other, studiogan[3], STEP)
    refused(convert("--ckpt-dir", folder, "--out", tmp_path / "x.pt", *NARROW), tmp_path / "x.pt",
            f"on {CLASSES + 2} classes", f"on {CLASSES};")


@pytest.mark.parametrize("name", ["notes.txt", "important.pt", "data.npz"])
def test_existing_file_that_is_not_ours_is_kept_unless_overwrite(studiogan, tmp_path, name):
    out = tmp_path / name
    out.write_bytes(b"precious")
    r = convert("--ckpt-dir", studiogan[0], "--out", out, *NARROW)
    assert r.exit_code == 2 and "--overwrite" in r.output and "Traceback" not in r.output
    assert out.read_bytes() == b"precious"
    r = convert("--ckpt-dir", studiogan[0], "--out", out, "--overwrite", *NARROW)
    assert r.exit_code == 0, r.output
    assert out.read_bytes() != b"precious"


def test_our_own_checkpoint_may_be_replaced(studiogan, tmp_path):
    out = tmp_path / "c.pt"
    assert convert("--ckpt-dir", studiogan[0], "--out", out, *NARROW).exit_code == 0
    r = convert("--ckpt-dir", studiogan[0], "--out", out, *NARROW)
    assert r.exit_code == 0, r.output
