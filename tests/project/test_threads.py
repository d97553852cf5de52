"""CPU threads of torch's kernels (sagan.threads): fewer than torch's default when other processes already
load the cores, what --threads / train.threads / OMP_NUM_THREADS ask for otherwise, one start-up line, and
no more data workers than cores."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from sagan.threads import choose_threads, data_workers


def test_cores_loaded_by_other_processes_get_fewer_threads():
    """2 cores, one other busy process (load 1.1): one thread, not torch's 2 (7-10x slower per step there)."""
    choice = choose_threads(0, default=2, cores=2, load=1.1, env={})
    assert choice.threads == 1
    assert "load average" in choice.reason and "--threads N" in choice.note()


def test_an_idle_machine_keeps_torchs_default_threads():
    assert choose_threads(0, default=2, cores=2, load=0.3, env={}).threads == 2
    assert choose_threads(0, default=16, cores=16, load=4.2, env={}).threads == 12  # the 4 busy cores left out
    assert choose_threads(0, default=2, cores=2, load=9.0, env={}).threads == 1  # never below one


def test_threads_option_and_omp_num_threads_win_over_the_automatic_choice():
    assert choose_threads(3, default=2, cores=2, load=1.9, env={"OMP_NUM_THREADS": "1"}).threads == 3
    env_choice = choose_threads(0, default=2, cores=2, load=1.9, env={"OMP_NUM_THREADS": "2"})
    assert env_choice.threads == 2 and "OMP_NUM_THREADS=2" in env_choice.reason


def test_processes_of_one_launch_share_the_cores():
    choice = choose_threads(0, default=8, cores=8, load=0.0, env={"LOCAL_WORLD_SIZE": "2"})
    assert choice.threads == 4 and "2 processes" in choice.reason


def test_data_workers_are_capped_to_the_cores_with_a_note():
    """uncond64 asks for 8 workers; on 2 cores torch would warn and the workers would wait on each other."""
    assert data_workers(8, cores=2) == (2, data_workers(8, cores=2)[1])
    assert "train.num_workers 8 capped to 2" in data_workers(8, cores=2)[1]
    assert data_workers(2, cores=2) == (2, None) and data_workers(0, cores=2) == (0, None)


def test_threads_is_a_config_key_with_automatic_default(tiny_cfg):
    from sagan.config import load_config
    from sagan.errors import ConfigError

    assert tiny_cfg.train.threads == 0
    assert load_config("demo", overrides=["train.threads=3"]).train.threads == 3
    with pytest.raises(ConfigError, match="train.threads must be >= 0"):
        load_config("demo", overrides=["train.threads=-1"])


def test_train_py_threads_sets_torch_threads_and_says_so(tmp_path, monkeypatch):
    from sagan.commands.train import main as train_cli

    import sagan.threads

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # restored afterwards, with torch's count below and the choice
    monkeypatch.setattr(sagan.threads, "_chosen", None)
    before = torch.get_num_threads()
    try:
        r = CliRunner().invoke(train_cli, ["--outdir", str(tmp_path / "run"), "--max-steps", "1", "--batch-size", "4",
                                           "--no-progress", "--threads", "2", "--set", "model.g_ch=16",
                                           "--set", "model.d_ch=16", "--set", "data.demo_size=8"],
                               catch_exceptions=False)
        assert r.exit_code == 0, r.output
        assert torch.get_num_threads() == 2
        assert "threads: 2 (--threads 2 / train.threads 2; override with --threads N)" in r.output
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("command", ["sagan.commands.train:main", "sagan.commands.sample:main",
                                     "sagan.commands.evaluate:stats", "sagan.commands.evaluate:metrics",
                                     "sagan.commands.experiments:run"])
def test_every_command_takes_threads(command):
    import importlib

    module, name = command.split(":")
    cmd = getattr(importlib.import_module(module), name)
    assert "--threads" in {o for p in cmd.params for o in p.opts}


def test_the_trainer_caps_its_data_workers_and_notes_it(tiny_cfg, tmp_path):
    from sagan.threads import usable_cores
    from sagan.training import Trainer

    asked = usable_cores() + 6  # uncond64 asks 8 on a 2-core machine
    cfg = tiny_cfg.replace(train={"num_workers": asked, "batch_size": 4, "max_steps": 1}, data={"demo_size": 8})
    trainer = Trainer(cfg, outdir=tmp_path / "run", progress=False)
    try:
        assert f"note: train.num_workers {asked} capped to {usable_cores()}" in " ".join(trainer._startup_notes)
        assert trainer.data.loader.num_workers == usable_cores()
    finally:
        trainer.release()
