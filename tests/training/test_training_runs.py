"""Run folders under faults: the lock a trainer holds, start-up kills, one TensorBoard events file
per run, resumes on other data, run names, legible grids and start-up notes. Each test failed before its fix."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from PIL import Image

from conftest import random_image_tree
from sagan.checkpoint import load_checkpoint
from sagan.sampling.viz import caption_strip_width
from training_utils import TINY_CLI, cli, one_line_error, spawn_cli, tiny, wait_for
from sagan.training import Trainer, train


def events_files(run: Path) -> list[Path]:
    return sorted(run.glob("events.out.tfevents.*"))


# one trainer per run folder: a lock that kill -9 and a failed start-up release ---------------------


def test_a_second_trainer_on_a_locked_run_directory_is_refused_and_kill_9_releases_the_lock(tmp_path):
    out = tmp_path / "run"
    train(tiny("train.max_steps=1"), outdir=out, progress=False)
    proc = spawn_cli("--resume", str(out), "--max-steps", "100000", "--checkpoint-every", "100000",
                     "--sample-every", "100000")
    try:
        wait_for(lambda: "step       5 |" in (out / "log.txt").read_text(), proc)
        err = one_line_error(cli("--resume", str(out), "--max-steps", "3", "--no-progress"))
        assert f"run directory {out} is in use by another process (pid {proc.pid})" in err
        assert load_checkpoint(out)["step"] == 1  # the refused trainer wrote nothing
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    result = cli("--resume", str(out), "--max-steps", "3", "--no-progress")  # kill -9 released the lock
    assert result.exit_code == 0, result.output
    assert load_checkpoint(out)["step"] == 3


def test_the_lock_is_released_when_start_up_fails(tmp_path, monkeypatch):
    def broken(self):
        raise RuntimeError("boom")

    monkeypatch.setattr(Trainer, "_build", broken)
    with pytest.raises(RuntimeError, match="boom"):
        Trainer(tiny("train.max_steps=1"), outdir=tmp_path / "run", progress=False)
    monkeypatch.undo()
    assert load_checkpoint(train(tiny("train.max_steps=1"), outdir=tmp_path / "other", progress=False))["step"] == 1
    from sagan.io import exclusive_lock

    with exclusive_lock(tmp_path / "run" / ".lock", "run directory"):  # free again
        pass


# a start-up killed before any step resumes; one TensorBoard events file per run --------------------


def test_a_run_killed_during_start_up_can_be_resumed(tmp_path, monkeypatch):
    def killed(self):
        raise KeyboardInterrupt  # as if killed while building the networks

    monkeypatch.setattr(Trainer, "_build", killed)
    monkeypatch.chdir(tmp_path)
    cli(*TINY_CLI, "--max-steps", "2", "--no-progress")
    monkeypatch.undo()
    run = tmp_path / "runs" / "00000-demo"
    assert run.is_dir()
    result = cli("--resume", str(run), "--no-progress")
    assert result.exit_code == 0, result.output
    assert load_checkpoint(run)["step"] == 2


def test_one_tensorboard_events_file_per_run_across_resumes(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    cfg = tiny("train.log_every=1", "train.checkpoint_every=2")
    train(cfg.replace(train={"max_steps": 3}), outdir=out, progress=False)
    train(cfg.replace(train={"max_steps": 5}), resume=out / "checkpoints" / "step_0000002.pt", progress=False)
    train(cfg.replace(train={"max_steps": 6}), resume=out, progress=False)
    assert len(events_files(out)) == 1
    ea = EventAccumulator(str(out))
    ea.Reload()
    assert [e.step for e in ea.Scalars("loss/d_loss")] == [1, 2, 3, 4, 5, 6]
    assert [e.step for e in ea.Images("samples")] == [5, 6]  # step 3 was on the branch the resume left


# a resume on other data: other class names noted, another class count refused ----------------------


@pytest.fixture
def folder_run(tmp_path):
    data = random_image_tree(tmp_path / "cats_dogs", ["cat", "dog"], per_class=4, size=32)
    run = train(tiny("train.max_steps=1", f"data.path={data}"), outdir=tmp_path / "run", pinned=(), progress=False)
    return run


def test_resume_on_data_with_other_class_names_says_what_differs(folder_run, tmp_path):
    other = random_image_tree(tmp_path / "vehicles", ["car", "bus"], per_class=4, size=32)
    result = cli("--resume", str(folder_run), "--data", str(other), "--max-steps", "2", "--no-progress")
    assert result.exit_code == 0, result.output
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:") and "classes" in line]
    assert len(warning) == 1 and "the checkpoint's 2 classes (cat, dog) vs the data's 2 classes (bus, car)" in warning[0]
    assert load_checkpoint(folder_run)["class_names"] == ["bus", "car"]


def test_resume_on_data_with_another_class_count_names_both_classes(folder_run, tmp_path):
    other = random_image_tree(tmp_path / "vehicles", ["car", "bus", "van"], per_class=4, size=32)
    err = one_line_error(cli("--resume", str(folder_run), "--data", str(other), "--max-steps", "2", "--no-progress"))
    assert "the checkpoint's 2 classes (cat, dog) vs the data's 3 classes (bus, car, van)" in err
    assert "model.num_classes" not in err and "--config" not in err
    assert load_checkpoint(folder_run)["step"] == 1


# run names and start-up notes for the user's own data ----------------------------------------------


def test_runs_on_own_data_are_named_after_config_and_data_and_notes_say_what_to_do(tmp_path, monkeypatch):
    data = random_image_tree(tmp_path / "digits32", ["seven"], per_class=8, size=32)
    monkeypatch.chdir(tmp_path)
    result = cli(*TINY_CLI, "--data", str(data), "--max-steps", "1", "--no-progress")
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "00000-demo-digits32"
    assert load_checkpoint(run)["step"] == 1
    log = (run / "log.txt").read_text()
    assert "training demo on digits32: 8 images, 1 classes" in log
    one_class = [line for line in log.splitlines() if "one class" in line]
    assert len(one_class) == 1 and "model.num_classes: 0" in one_class[0] and "(seven)" in one_class[0]
    prepare = [line for line in log.splitlines() if "sagan-prepare" in line]
    assert len(prepare) == 1 and "50x faster per image" in prepare[0]


def test_packed_or_demo_data_have_no_folder_note(tmp_path):
    run = train(tiny("train.max_steps=1"), outdir=tmp_path / "run", progress=False)
    log = (run / "log.txt").read_text()
    assert "sagan-prepare" not in log and "one class" not in log and "training demo: " in log


# training grids of small images are upscaled to legible tiles --------------------------------------


def test_training_grids_of_a_32px_run_are_upscaled_to_legible_tiles(tmp_path):
    run = train(tiny("train.max_steps=1"), outdir=tmp_path / "run", progress=False)
    grid = Image.open(run / "samples" / "step_0000001.png")
    width = grid.width - caption_strip_width(["white_checkerboard"], 96)
    assert width >= 8 * 96 and grid.height >= 10 * 96
    assert os.path.getsize(run / "samples" / "step_0000001.png") > 0


# the kill -9 campaign's comparison ---------------------------------------------------------------


def test_two_straight_runs_record_the_same_python_and_numpy_rng_states_and_lineage(tmp_path):
    a = load_checkpoint(train(tiny("train.max_steps=1"), outdir=tmp_path / "a", progress=False))
    b = load_checkpoint(train(tiny("train.max_steps=1"), outdir=tmp_path / "b", progress=False))
    assert a["rng"]["python"] == b["rng"]["python"] and a["rng"]["numpy"] == b["rng"]["numpy"]
    assert a["meta"]["lineage"] == b["meta"]["lineage"] == [[0, "0"]]
