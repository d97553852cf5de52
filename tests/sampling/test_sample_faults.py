"""sample.py data-loss faults: --overwrite clears only what sample.py
wrote (its marker lists it), existing files that are not ours are kept, a killed .npz writer's temp
folder is swept by the next writer of the same target, long class names, no bars in a log file."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sagan.sampling.sets import MARKER, class_folder_names
from sample_utils import ckpt, run  # noqa: F401  (fixture)


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_marker_lists_what_sample_py_wrote(ckpt, tmp_path):
    out = tmp_path / "pngs"
    assert run("--checkpoint", ckpt, "--out", f"{out}/", "--num-samples", 4, "--classes", "0-1").exit_code == 0
    marker = json.loads((out / MARKER).read_text())
    assert sorted(marker["files"]) == [f for f in _files(out) if f != MARKER]


@pytest.mark.parametrize("tree", ["photos", "training_set", "other_run_without_marker"])
def test_overwrite_refuses_a_class_tree_of_pngs_without_the_marker(ckpt, tmp_path, tree):
    out = tmp_path / tree
    for c in ("cat", "dog"):
        (out / c).mkdir(parents=True)
        for k in range(3):
            Image.new("RGB", (8, 8)).save(out / c / f"{k:06d}.png")
    before = _files(out)
    r = run("--checkpoint", ckpt, "--out", f"{out}/", "--num-samples", 2, "--overwrite")
    assert r.exit_code == 2 and "Traceback" not in r.output
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and MARKER in errors[0] and "refusing to clear it" in errors[0]
    assert _files(out) == before


def test_overwrite_clears_only_the_listed_files(ckpt, tmp_path):
    out = tmp_path / "pngs"
    assert run("--checkpoint", ckpt, "--out", f"{out}/", "--num-samples", 4, "--classes", "0-1").exit_code == 0
    (out / "class_0" / "mine.png").write_bytes(b"user's")  # added by the user afterwards: not sample.py's
    (out / "notes.txt").write_text("keep")
    r = run("--checkpoint", ckpt, "--out", f"{out}/", "--num-samples", 2, "--classes", "2-3", "--overwrite")
    assert r.exit_code == 0, r.output
    assert (out / "class_0" / "mine.png").read_bytes() == b"user's" and (out / "notes.txt").read_text() == "keep"
    assert set(_files(out)) == {"class_0/mine.png", "notes.txt", "class_2/000000.png", "class_3/000000.png", MARKER}
    assert sorted(json.loads((out / MARKER).read_text())["files"]) == ["class_2/000000.png", "class_3/000000.png"]


@pytest.mark.parametrize("entry", ["../outside.png", "/etc/passwd", "class_0/../../x.png"])
def test_a_forged_marker_cannot_reach_outside_the_folder(ckpt, tmp_path, entry):
    out = tmp_path / "pngs"
    (out / "class_0").mkdir(parents=True)
    (out / "class_0" / "000000.png").write_bytes(b"x")
    (out / MARKER).write_text(json.dumps({"format": "sagan-samples", "files": ["class_0/000000.png", entry]}))
    (tmp_path / "outside.png").write_bytes(b"keep")
    r = run("--checkpoint", ckpt, "--out", f"{out}/", "--num-samples", 2, "--overwrite")
    assert r.exit_code == 2 and "Traceback" not in r.output and MARKER in r.output
    assert (tmp_path / "outside.png").read_bytes() == b"keep" and (out / "class_0" / "000000.png").exists()


@pytest.mark.parametrize("name", ["grid.png", "samples.npz"])
def test_existing_file_that_is_not_ours_is_kept_unless_overwrite(ckpt, tmp_path, name):
    out = tmp_path / name
    out.write_bytes(b"precious")
    args = ["--checkpoint", ckpt, "--out", out, "--num-samples", 4]
    r = run(*args)
    assert r.exit_code == 2 and "--overwrite" in r.output and "Traceback" not in r.output
    assert out.read_bytes() == b"precious"
    assert run(*args, "--overwrite").exit_code == 0 and out.read_bytes() != b"precious"


@pytest.mark.parametrize("name", ["grid.png", "samples.npz"])
def test_our_own_file_is_replaced_without_overwrite(ckpt, tmp_path, name):
    out = tmp_path / name
    args = ["--checkpoint", ckpt, "--out", out, "--num-samples", 4]
    assert run(*args).exit_code == 0
    r = run(*args, "--seed", 3)
    assert r.exit_code == 0, r.output


def test_a_png_from_elsewhere_is_not_taken_for_ours(ckpt, tmp_path):
    out = tmp_path / "photo.png"
    Image.new("RGB", (8, 8), "red").save(out)
    before = out.read_bytes()
    assert run("--checkpoint", ckpt, "--out", out).exit_code == 2 and out.read_bytes() == before


KILL_CHILD = """
import os, signal, sys
import sagan.sampling.sets as S
original = S._write_npy_members
def killed(tmp, *args, **kwargs):
    original(tmp, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)  # mid-write: the temp folder holds the full-size images
S._write_npy_members = killed
import sagan.commands.sample as script
script.main(sys.argv[1:])
"""


def test_killed_npz_writer_leaves_a_temp_folder_that_the_next_writer_sweeps(ckpt, tmp_path):
    out = tmp_path / "s.npz"
    args = ["--checkpoint", str(ckpt), "--out", str(out), "--num-samples", "40", "--device", "cpu"]
    proc = subprocess.run([sys.executable, "-c", KILL_CHILD, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".s.npz.")]
    assert stale and not out.exists()
    assert run(*args[:-2]).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz"]


def test_another_targets_temp_files_are_left_alone(ckpt, tmp_path):
    other = tmp_path / ".other.npz.99999999.abcd.tmp"
    other.mkdir()
    assert run("--checkpoint", ckpt, "--out", tmp_path / "s.npz", "--num-samples", 4).exit_code == 0
    assert other.is_dir()


def test_long_class_names_are_shortened_to_unique_names_that_fit():
    long = "x" * 254
    names = class_folder_names([long, long, "é" * 200, "ok"], 4)
    assert len(set(names)) == 4 and all(len(os.fsencode(n)) <= 255 for n in names)
    assert names[3] == "ok" and names[0].endswith("_0") and names[1].endswith("_1")
    assert names[2].encode().decode("utf-8")  # cut on a character boundary


def test_long_class_names_write_a_png_folder(tmp_path):
    import torch

    from sagan.sampling.sets import write_png_folder

    long = "y" * 254
    names = class_folder_names([long, long], 2)
    batches = [(torch.zeros(2, 8, 8, 3, dtype=torch.uint8), torch.tensor([0, 1]))]
    write_png_folder(tmp_path / "out", batches, names)
    assert len([p for p in (tmp_path / "out").rglob("*.png")]) == 2


def test_no_progress_bar_in_a_log_file(ckpt, tmp_path):
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, "-m", "sagan.commands.sample", "--checkpoint", str(ckpt), "--out",
                               str(tmp_path / "s.npz"), "--num-samples", "40", "--batch-size", "8",
                               "--device", "cpu"], stdout=f, stderr=subprocess.STDOUT, timeout=300)
    text = log.read_text()
    assert proc.returncode == 0, text
    assert "\r" not in text and "sampling:" not in text and "wrote" in text
