"""sagan-prepare: one packer per --out (a lock released on any exit, kill -9
included), and the default resolution follows the source's images; upscaling is said out loud."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import random_image_tree
from sagan.commands.prepare import main as prepare_cli
from sagan.io import exclusive_lock

HOLDER = """
import sys, time
import sagan.data.prepare as prepare
def slow(*args, **kwargs):
    print("packing", flush=True)
    time.sleep(120)
prepare._pack_tasks = slow
prepare.pack(sys.argv[1], sys.argv[2], 32, workers=0)
"""


def _cli(*args):
    return CliRunner().invoke(prepare_cli, [str(a) for a in args])


def test_second_packer_on_one_out_is_refused_naming_folder_and_pid(tmp_path):
    src = random_image_tree(tmp_path / "src", ["a", "b"], per_class=2, size=32)
    out = tmp_path / "packed"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(src), str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "packing"
        r = _cli("--source", src, "--out", out, "--resolution", 32, "--workers", 0)
        assert r.exit_code == 2 and "Traceback" not in r.output
        errors = [line for line in r.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and str(out) in errors[0] and f"pid {holder.pid}" in errors[0], r.output
        assert not (out / "manifest.json").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # kill -9 released the lock: the next packer runs (and resumes/creates) normally
    r = _cli("--source", src, "--out", out, "--resolution", 32, "--workers", 0, "--quiet")
    assert r.exit_code == 0, r.output
    assert json.loads((out / "manifest.json").read_text())["num_images"] == 4


def test_exclusive_lock_is_released_on_exception_and_reentrant_after(tmp_path):
    lock = tmp_path / "d" / ".lock"
    with pytest.raises(RuntimeError):
        with exclusive_lock(lock, "--out"):
            assert str(os.getpid()) in lock.read_text()
            raise RuntimeError("boom")
    with exclusive_lock(lock, "--out"):
        child = subprocess.run([sys.executable, "-c", "import sys; from sagan.io import exclusive_lock\n"
                                "from sagan.errors import UserError\n"
                                f"try:\n  exclusive_lock({str(lock)!r}, '--outdir').__enter__()\n"
                                "except UserError as e:\n  print(e); sys.exit(2)"],
                               capture_output=True, text=True, timeout=60)
        assert child.returncode == 2 and f"pid {os.getpid()}" in child.stdout and "--outdir" in child.stdout


def test_default_resolution_follows_the_source_images(tmp_path):
    src = random_image_tree(tmp_path / "src", ["a", "b"], per_class=3, size=32)
    r = _cli("--source", src, "--out", tmp_path / "p", "--workers", 0, "--quiet")
    assert r.exit_code == 0, r.output
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert manifest["resolution"] == 32 and "32px" in r.output and "from the source" in r.output


def test_default_resolution_of_odd_sizes_is_the_power_of_two_below(tmp_path):
    src = random_image_tree(tmp_path / "src", ["a"], per_class=2, size=100)
    r = _cli("--source", src, "--out", tmp_path / "p", "--workers", 0, "--quiet")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "p" / "manifest.json").read_text())["resolution"] == 64


def test_upscaling_is_said_out_loud(tmp_path):
    src = random_image_tree(tmp_path / "src", ["a", "b"], per_class=2, size=32)
    r = _cli("--source", src, "--out", tmp_path / "p", "--resolution", 128, "--workers", 0, "--quiet")
    assert r.exit_code == 0, r.output
    assert "upscal" in r.output and "32" in r.output and "128" in r.output
