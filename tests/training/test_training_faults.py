"""Faults and bad input around training and checkpoints: each test failed before its fix."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import random_image_tree
from sagan.checkpoint import load_checkpoint, save_checkpoint
from sagan.models import load_generator
from sagan.errors import CheckpointError
from sagan.io import link_atomic
from sagan.commands.sample import main as sample_cli
from training_utils import REPO, TINY_CLI, cli, one_line_error, tiny, wait_for
from sagan.training import train


@pytest.fixture(scope="module")
def run2(tmp_path_factory):
    """A finished 2-step run (checkpoints at steps 1 and 2)."""
    out = tmp_path_factory.mktemp("faults") / "run"
    train(tiny("train.max_steps=2", "train.checkpoint_every=1", "train.keep_checkpoints=3"), outdir=out,
          progress=False)
    return out


def final_error(result) -> str:
    """A failure during a run: exit 2, and stderr ends with one ``error:`` line (after the run's notes)."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), result.stderr
    return last


def copy_run(run: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(run, dest)
    return dest


def payload_of(path) -> dict:
    return {k: v for k, v in load_checkpoint(path).items() if k not in ("path", "format", "version")}


# a resume takes the config's optimiser settings over the checkpoint's, and says which --------------


def test_overrides_of_optimiser_settings_apply_on_resume(run2, tmp_path):
    run = copy_run(run2, tmp_path / "run")
    result = cli("--resume", str(run), "--max-steps", "3", "--set", "train.lr_d=1e-6", "--set", "train.beta2=0.99",
                 "--no-progress")
    assert result.exit_code == 0, result.output
    ckpt = load_checkpoint(run)
    groups_d, groups_g = ckpt["opt_D"]["param_groups"], ckpt["opt_G"]["param_groups"]
    assert all(g["lr"] == 1e-6 and tuple(g["betas"]) == (0.0, 0.99) for g in groups_d)
    assert all(g["lr"] == 2e-4 and tuple(g["betas"]) == (0.0, 0.99) for g in groups_g)
    assert "optimiser settings from the config replace the checkpoint's: D betas (0.0, 0.9) -> (0.0, 0.99), " \
           "D lr 0.0004 -> 1e-06" in result.stderr


# a full disk while saving: one line, the previous checkpoint kept, no temp file left ---------------


def test_full_disk_while_saving_a_checkpoint_is_one_line_and_keeps_the_previous(run2, tmp_path, monkeypatch):
    run = copy_run(run2, tmp_path / "run")
    before = (run / "checkpoints" / "last.pt").read_bytes()

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    err = final_error(cli("--resume", str(run), "--max-steps", "3", "--no-progress"))
    assert "step_0000003.pt: disk full" in err and "free" in err and "needed" in err
    assert (run / "checkpoints" / "last.pt").read_bytes() == before
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_full_disk_on_a_real_small_file_system_is_one_line_naming_the_checkpoint_folder(small_disk, tmp_path):
    disk = small_disk("4m")  # config, events and one grid fit; a ~5 MB checkpoint does not
    result = CliRunner().invoke(
        __import__("sagan.commands.train", fromlist=["main"]).main,
        ["--outdir", str(disk / "run"), *TINY_CLI, "--max-steps", "1", "--no-progress"], catch_exceptions=False)
    err = final_error(result)
    assert "disk full" in err and str(disk / "run" / "checkpoints") in err
    assert not list((disk / "run" / "checkpoints").glob(".*.tmp")) if (disk / "run" / "checkpoints").exists() else True


def test_torch_writer_failure_is_recognised_as_disk_full(tmp_path, monkeypatch):
    def failing_save(obj, f, *a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 128 vs 64")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(Exception, match=r"cannot write .*x\.pt: disk full"):
        save_checkpoint(tmp_path / "x.pt", {"G": {"w": torch.zeros(3)}})
    assert list(tmp_path.iterdir()) == []


# temp files of a killed run: swept at start-up, never written through ------------------------------


def test_stale_temp_files_are_swept_at_start_up(run2, tmp_path):
    run = copy_run(run2, tmp_path / "run")
    ckpts = run / "checkpoints"
    (ckpts / ".step_0000009.pt.abcd.tmp").write_bytes(b"x" * 1000)
    os.link(ckpts / "step_0000001.pt", ckpts / f".last.pt.{os.getpid()}.tmp")
    (run / "samples").mkdir(exist_ok=True)
    (run / "samples" / ".step_0000002.png.zz.tmp").write_bytes(b"png")
    result = cli("--resume", str(run), "--max-steps", "3", "--no-progress")
    assert result.exit_code == 0, result.output
    assert not list(run.rglob(".*.tmp"))
    assert "removed 3 stale temp file(s)" in result.stderr


def test_linking_never_writes_through_a_stale_temp_link(tmp_path):
    older, newer, last = tmp_path / "step_1.pt", tmp_path / "step_2.pt", tmp_path / "last.pt"
    older.write_bytes(b"older checkpoint")
    newer.write_bytes(b"newer checkpoint")
    os.link(older, tmp_path / f".last.pt.{os.getpid()}.tmp")  # what a kill inside the link step used to leak
    link_atomic(newer, last)
    assert older.read_bytes() == b"older checkpoint" and last.read_bytes() == b"newer checkpoint"


# outputs follow the umask --------------------------------------------------------------------------


def test_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        run = train(tiny("train.max_steps=1", "train.sample_every=1"), outdir=tmp_path / "run", progress=False)
    finally:
        os.umask(old)
    for p in (run / "checkpoints" / "last.pt", run / "checkpoints" / "step_0000001.pt", run / "config.yaml",
              run / "samples" / "step_0000001.png"):
        assert p.stat().st_mode & 0o777 == 0o644, p


# damaged checkpoints (NaN weights, random bytes, malformed fields, truncation): one whole line -----


def test_nan_weights_are_refused_naming_the_tensor(run2, tmp_path):
    payload = payload_of(run2)
    name = next(k for k in payload["G_ema"] if k.endswith("original"))
    payload["G_ema"][name] = payload["G_ema"][name].clone().fill_(float("nan"))
    bad = save_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt", payload)
    with pytest.raises(CheckpointError, match=f"tensor G_ema.{name} holds NaN/Inf") as e:
        load_generator(bad)
    assert "\n" not in str(e.value)
    result = CliRunner().invoke(sample_cli, ["--checkpoint", str(bad), "--out", str(tmp_path / "g.png")])
    assert result.exit_code == 2 and "NaN/Inf" in result.output and not (tmp_path / "g.png").exists()
    err = one_line_error(cli("--resume", str(tmp_path / "run"), "--max-steps", "5"))
    assert "unusable" in err and "learning rate" not in err


def test_random_bytes_inside_a_checkpoint_are_refused(run2, tmp_path):
    data = bytearray((run2 / "checkpoints" / "last.pt").read_bytes())
    rng = np.random.default_rng(0)
    bad = tmp_path / "checkpoints" / "last.pt"
    bad.parent.mkdir()
    (tmp_path / "checkpoints" / "step_0000001.pt").write_bytes(bytes(data))
    for _ in range(5):
        corrupt = bytearray(data)
        pos = int(rng.integers(len(data) // 4, 3 * len(data) // 4))
        corrupt[pos:pos + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
        bad.write_bytes(bytes(corrupt))
        with pytest.raises(CheckpointError, match=r"last\.pt is corrupt .*use an older checkpoint such as .*step_0000001\.pt"):
            load_checkpoint(bad)


@pytest.mark.parametrize("field, value, message", [
    ("rng", {}, "field rng is malformed"),
    ("step", "six", "field step is malformed"),
    ("data", {"epoch": "x"}, "field data is malformed"),
    ("opt_D", [1, 2], "field opt_D is malformed"),
    ("G", {"w": 3}, "field G is malformed"),
])
def test_malformed_fields_are_one_line_errors(run2, tmp_path, field, value, message):
    payload = payload_of(run2)
    payload[field] = value
    save_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt", payload)
    err = one_line_error(cli("--resume", str(tmp_path / "run"), "--max-steps", "5"))
    assert message in err


def test_truncated_checkpoint_message_is_whole(run2, tmp_path):
    data = (run2 / "checkpoints" / "last.pt").read_bytes()
    bad = tmp_path / "last.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(bad)
    assert str(e.value).endswith("use another checkpoint") and "\n" not in str(e.value)


# a run stopped early: before its first checkpoint, by a second Ctrl-C, by SIGTERM ------------------


def test_a_run_killed_before_its_first_checkpoint_can_be_restarted(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(__import__("yaml").safe_dump(tiny("train.max_steps=1").to_dict()))
    (run / "log.txt").write_text("training demo ...\n")
    err = one_line_error(cli("--outdir", str(run), *TINY_CLI, "--max-steps", "1"))
    assert f"--resume {run}" in err and "before its first checkpoint" in err
    result = cli("--resume", str(run), "--no-progress")
    assert result.exit_code == 0, result.output
    assert "starting it again from step 0" in result.stderr
    assert load_checkpoint(run)["step"] == 1


def test_second_ctrl_c_before_any_checkpoint_names_the_real_directory(tmp_path, monkeypatch):
    from sagan.training import Trainer

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "run", interrupted)
    err = one_line_error(cli("--outdir", str(tmp_path / "run"), *TINY_CLI))
    assert "no checkpoint was written yet" in err and str(tmp_path / "run") in err and "OUTDIR" not in err
    assert "intact" not in err


def test_sigterm_exits_143_after_saving_and_the_message_prints_once_with_workers(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), "--no-progress", *TINY_CLI, "--set",
                             "train.num_workers=2", "--outdir", str(out), "--max-steps", "100000",
                             "--checkpoint-every", "100000", "--sample-every", "100000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
                            start_new_session=True)
    wait_for(lambda: (out / "log.txt").exists() and "step       5 |" in (out / "log.txt").read_text(), proc)
    os.killpg(proc.pid, signal.SIGTERM)  # the whole process group, loader workers included
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.count("stopping after this step") == 1, err
    assert "Traceback" not in err
    assert load_checkpoint(out)["step"] >= 5


# resume refusals and notes: unwritable folders, a finished run, another architecture ---------------


def _readonly_mount(path: Path) -> bool:
    if os.geteuid() != 0:
        return False
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_unwritable_outdir_and_resume_are_one_line_before_training(run2, tmp_path):
    ro = tmp_path / "ro"
    if not _readonly_mount(ro):
        pytest.skip("needs root to mount a read-only tmpfs")
    try:
        err = one_line_error(cli("--outdir", str(ro / "run"), *TINY_CLI))
        assert "not writable" in err or "Read-only" in err
        run = copy_run(run2, tmp_path / "rw")
        subprocess.run(["mount", "--bind", "-o", "ro", str(run), str(run)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(run)], check=True)
        try:
            err = one_line_error(cli("--resume", str(run), "--max-steps", "5"))
            assert "run directory" in err and "not writable" in err
        finally:
            subprocess.run(["umount", str(run)])
    finally:
        subprocess.run(["umount", str(ro)])


def test_resume_of_a_finished_run_says_how_to_extend_it(run2):
    result = cli("--resume", str(run2), "--no-progress")
    assert result.exit_code == 0
    assert "already reached train.max_steps=2 (step 2)" in result.stderr and "--max-steps N" in result.stderr


def test_resume_with_another_config_blames_the_architecture_not_the_data(run2):
    err = one_line_error(cli("--resume", str(run2), "--config", "imagenet128"))
    assert "another architecture" in err and "demo" not in err.split("(")[0]


# data and checkpoints from elsewhere: undecodable class names, a loose checkpoint ------------------


def test_class_folders_with_undecodable_names_train_and_log(tmp_path):
    tree = random_image_tree(tmp_path / "tree", (os.fsdecode(b"caf\xff"), "dog"))
    result = cli("--data", str(tree), *TINY_CLI, "--max-steps", "1", "--outdir", str(tmp_path / "run"), "--no-progress")
    assert result.exit_code == 0, result.output
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "caf\\xff" in log
    assert load_checkpoint(tmp_path / "run")["class_names"][0] in (os.fsdecode(b"caf\xff"), "caf\\xff")


def test_a_loose_checkpoint_resumes_into_a_new_run_directory(run2, tmp_path, monkeypatch):
    """A checkpoint outside a run's checkpoints/ folder (e.g. converted from released weights) starts a new
    runs/NNNNN-<name> folder instead of writing next to the file."""
    import shutil

    loose = tmp_path / "downloads" / "weights.pt"
    loose.parent.mkdir()
    shutil.copy(run2 / "checkpoints" / "last.pt", loose)
    monkeypatch.chdir(tmp_path)
    result = cli("--resume", str(loose), "--max-steps", "3", "--no-progress")
    assert result.exit_code == 0, result.output
    assert load_checkpoint(tmp_path / "runs" / "00000-demo")["step"] == 3
    assert sorted(p.name for p in loose.parent.iterdir()) == ["weights.pt"]


# a process of a multi-process run dies ---------------------------------------------------------------


@pytest.mark.slow  # two gloo processes train to their second checkpoint (~40 s on 2 busy cores)
def test_a_killed_rank_leaves_one_line_on_the_other_saying_who_and_how_to_resume(tmp_path):
    from launch_utils import rank_pid, two_process_train
    from split_utils import TINY

    run = tmp_path / "run"
    proc = subprocess.Popen(two_process_train(run, TINY + ["train.max_steps=1000"]), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True)
    try:
        wait_for(lambda: (run / "checkpoints" / "step_0000004.pt").exists(), proc, timeout=300)
        os.kill(rank_pid(run, 1), signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    ours = stderr.split("Traceback (most recent call last)")[0]  # the launcher's own report follows
    assert "[rank0]" not in stderr, stderr[-3000:]
    errors = [line for line in ours.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, ours[-3000:]
    assert errors[0].startswith("error: process rank 1 of this 2-process run stopped (killed or crashed) at step ")
    assert errors[0].endswith(f"the checkpoints are intact (the last at step {load_checkpoint(run)['step']}): continue "
                              f"with the same launch command and --resume {run}")


def test_a_collective_failing_for_a_lost_peer_names_the_other_rank(monkeypatch):
    from sagan.training.dist import lost_peer

    gloo = RuntimeError("[third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error [127.0.0.1]:10128: Connection "
                        "reset by peer. This is typically caused by a remote worker hanging or bugs in the "
                        "application.")
    assert lost_peer(gloo) is None  # one process: no peer to lose
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert lost_peer(gloo) == "process rank 0 of this 2-process run stopped (killed or crashed)"
    assert lost_peer(RuntimeError("mat1 and mat2 shapes cannot be multiplied")) is None
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert lost_peer(gloo) == "process another rank (one of 0, 2, 3) of this 4-process run stopped (killed or crashed)"


def test_resume_of_a_run_whose_last_checkpoint_is_a_fifo_is_refused_not_restarted(run2, tmp_path):
    """A last.pt planted as a FIFO: neither taken for "no checkpoint yet" (a restart from step 0) nor opened
    (a hang)."""
    planted = copy_run(run2, tmp_path / "planted")
    for f in (planted / "checkpoints").glob("*.pt"):
        f.unlink()
    os.mkfifo(planted / "checkpoints" / "last.pt")
    proc = subprocess.run([sys.executable, str(REPO / "train.py"), "--resume", str(planted), "--no-progress"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert f"checkpoint {planted / 'checkpoints' / 'last.pt'} is a FIFO, not a regular file" in proc.stderr


def test_a_fifo_among_the_step_files_is_skipped_when_the_run_resumes(run2, tmp_path):
    run = copy_run(run2, tmp_path / "with_step_fifo")
    os.mkfifo(run / "checkpoints" / "step_0000009.pt")
    proc = subprocess.run([sys.executable, str(REPO / "train.py"), "--resume", str(run), "--no-progress",
                           "--max-steps", "3"], capture_output=True, text=True, timeout=180, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert load_checkpoint(run)["step"] == 3
