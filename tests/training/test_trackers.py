"""Experiment trackers (``train.log_with``): W&B (offline) and MLflow (SQLite store) get what TensorBoard gets,
read back from the files the real libraries wrote; ``none`` writes no tracker file and trains the same;
resumes continue the tracker runs; a tracker failing mid-run is reported once and training goes on."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from sagan.checkpoint import load_checkpoint
from sagan.config import load_config
from sagan.errors import ConfigError
from sagan.training import train
from sagan.training.trackers import STATE_FILE
from training_utils import TINY, cli, one_line_error
from tracker_files import mlflow_client, mlflow_history, wandb_config, wandb_history, wandb_run_files, wandb_run_id

pytest.importorskip("wandb")
pytest.importorskip("mlflow")

STEPS = ["train.max_steps=3", "train.log_every=1", "train.sample_every=2", "train.checkpoint_every=1000"]
LOSSES = ("loss/d_loss", "loss/g_loss", "logits/real")


def tiny(*overrides: str):
    return load_config("demo", overrides=TINY + STEPS + list(overrides))


@pytest.fixture
def offline(monkeypatch):
    """W&B offline and quiet, MLflow without a tracking URI: nothing leaves the machine."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var in ("WANDB_DIR", "WANDB_PROJECT", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(var, raising=False)


def tensorboard_scalars(run: Path, tag: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run))
    ea.Reload()
    return {e.step: e.value for e in ea.Scalars(tag)}


def mlflow_run(run: Path):
    client = mlflow_client(run)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1, runs
    return client, runs[0]


def test_wandb_gets_tensorboards_scalars_the_config_the_grids_and_the_run_name(tmp_path, offline):
    run = train(tiny("train.log_with=[tensorboard,wandb]"), outdir=tmp_path / "00007-demo", progress=False)
    [wandb_file] = wandb_run_files(run)  # W&B's files in the run folder (no WANDB_DIR)
    history = wandb_history(wandb_file)
    for tag in LOSSES:
        tb = tensorboard_scalars(run, tag)
        assert sorted(tb) == [1, 2, 3]
        assert {r["_step"]: r[tag] for r in history if tag in r} == pytest.approx(tb, rel=1e-6)
    config = wandb_config(wandb_file)
    assert config["train.lr_d"] == pytest.approx(4e-4) and config["model.g_ch"] == 16
    # the sample grids of steps 2 and 3 as images
    assert len(list(wandb_file.parent.glob("files/media/images/samples_*.png"))) == 2
    images = {r["_step"]: r["samples"] for r in history if "samples" in r}
    assert sorted(images) == [2, 3] and all(v["_type"] == "images/separated" for v in images.values())
    state = json.loads((run / STATE_FILE).read_text())
    assert state["wandb"]["id"] == wandb_run_id(wandb_file) and state["wandb"]["name"] == "00007-demo"
    assert state["wandb"]["project"] == "sagan"


def test_mlflow_gets_tensorboards_scalars_the_config_the_grids_and_the_run_name(tmp_path, offline):
    run = train(tiny("train.log_with=[tensorboard,mlflow]"), outdir=tmp_path / "00007-demo", progress=False)
    client, mlrun = mlflow_run(run)  # a SQLite store in the run folder (no MLFLOW_TRACKING_URI)
    for tag in LOSSES:
        tb = tensorboard_scalars(run, tag)
        assert sorted(tb) == [1, 2, 3]
        assert mlflow_history(client, mlrun.info.run_id, tag) == pytest.approx(tb, rel=1e-6)
    assert mlrun.data.params["train.lr_d"] == "0.0004" and mlrun.data.params["model.g_attn"] == "[16]"
    assert mlrun.info.run_name == "00007-demo"
    assert client.get_experiment(mlrun.info.experiment_id).name == "sagan"
    # the sample grids of steps 2 and 3 as image artifacts at their steps, stored in the run folder
    grids = [a.path for a in client.list_artifacts(mlrun.info.run_id, "images") if a.path.endswith(".png")]
    assert sorted(p.split("+step+")[1].split("+")[0] for p in grids) == ["2", "3"]
    assert len(list((run / "mlartifacts").rglob("*.png"))) == 2
    assert json.loads((run / STATE_FILE).read_text())["mlflow"]["run_id"] == mlrun.info.run_id


def test_log_with_none_writes_no_tracker_files_and_trains_the_same_weights(tmp_path, offline):
    default = train(tiny(), outdir=tmp_path / "default", progress=False)
    none = train(tiny("train.log_with=[none]"), outdir=tmp_path / "none", progress=False)
    assert list(default.glob("events.out.tfevents.*"))
    assert not list(none.glob("events.out.tfevents.*"))
    for name in ("wandb", "mlflow.db", "mlartifacts", STATE_FILE):
        assert not (none / name).exists() and not (default / name).exists()
    assert (none / "log.txt").read_text().count("step ") >= 3 and list((none / "samples").glob("*.png"))
    a, b = load_checkpoint(default), load_checkpoint(none)
    for k, v in a["G"].items():
        assert torch.equal(v, b["G"][k]), k


@pytest.mark.slow
def test_a_resumed_run_continues_the_same_wandb_and_mlflow_runs(tmp_path, offline):
    out = train(tiny("train.log_with=[wandb,mlflow]"), outdir=tmp_path / "run", progress=False)
    first = json.loads((out / STATE_FILE).read_text())
    train(tiny("train.log_with=[wandb,mlflow]", "train.max_steps=5"), outdir=out, resume=out, progress=False)
    files = wandb_run_files(out)
    assert len(files) == 2 and {wandb_run_id(f) for f in files} == {first["wandb"]["id"]}  # `wandb sync` joins them
    assert [r["_step"] for f in files for r in wandb_history(f) if "loss/g_loss" in r] == [1, 2, 3, 4, 5]
    client, mlrun = mlflow_run(out)
    assert mlrun.info.run_id == first["mlflow"]["run_id"]
    assert sorted(mlflow_history(client, mlrun.info.run_id, "loss/g_loss")) == [1, 2, 3, 4, 5]
    # MLflow keeps a run's first params; the changed one is a tag and a note
    assert mlrun.data.params["train.max_steps"] == "3" and mlrun.data.tags["resumed.train.max_steps"] == "5"
    log = (out / "log.txt").read_text()
    assert f"continuing W&B run {first['wandb']['id']}" in log and "train.max_steps 3 -> 5" in log


def test_a_resume_without_a_recorded_tracker_run_says_it_starts_a_new_one(tmp_path, offline):
    out = train(tiny(), outdir=tmp_path / "run", progress=False)
    train(tiny("train.log_with=[tensorboard,mlflow]", "train.max_steps=4"), outdir=out, resume=out, progress=False)
    assert "no MLflow run recorded in this run folder; starting a new one" in (out / "log.txt").read_text()
    client, mlrun = mlflow_run(out)
    assert sorted(mlflow_history(client, mlrun.info.run_id, "loss/g_loss")) == [4]


def test_a_tracker_failing_mid_run_is_reported_once_and_training_goes_on(tmp_path, offline, monkeypatch):
    import mlflow

    real, calls = mlflow.log_metrics, []

    def disk_full_from_step_2(metrics, step=None, **kwargs):  # MLflow's store on a full disk
        calls.append(step)
        if step >= 2:
            raise OSError(28, "No space left on device")
        return real(metrics, step=step, **kwargs)

    monkeypatch.setattr(mlflow, "log_metrics", disk_full_from_step_2)
    run = train(tiny("train.log_with=[tensorboard,mlflow]", "train.max_steps=4"), outdir=tmp_path / "run",
                progress=False)
    assert calls == [1, 2]  # dropped after its failure
    warnings = [line for line in (run / "log.txt").read_text().splitlines() if "tracker failed" in line]
    assert len(warnings) == 1 and "mlflow tracker failed at step 2" in warnings[0]
    assert "No space left on device" in warnings[0] and "training goes on" in warnings[0]
    assert sorted(tensorboard_scalars(run, "loss/g_loss")) == [1, 2, 3, 4]  # the run folder's own log is whole
    assert load_checkpoint(run)["step"] == 4
    client, mlrun = mlflow_run(run)
    assert sorted(mlflow_history(client, mlrun.info.run_id, "loss/g_loss")) == [1]


def test_mlflow_tracking_uri_is_honoured(tmp_path, offline, monkeypatch):
    store = tmp_path / "elsewhere.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root of a SQLite URI: ./mlruns
    run = train(tiny("train.log_with=[mlflow]", "train.max_steps=1"), outdir=tmp_path / "run", progress=False)
    assert store.is_file() and not (run / "mlflow.db").exists() and not (run / "mlartifacts").exists()
    assert len(list((tmp_path / "mlruns").rglob("*.png"))) == 1  # the grid of step 1, where MLflow puts artifacts
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    [mlrun] = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert sorted(mlflow_history(client, mlrun.info.run_id, "loss/d_loss")) == [1]


def test_a_missing_tracker_package_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    err = one_line_error(cli("--set", "train.log_with=[wandb]", "--outdir", str(tmp_path / "run"), "--max-steps", "1",
                             "--no-progress"))
    assert "the wandb package is not installed" in err and 'pip install -e ".[wandb]"' in err


@pytest.mark.parametrize("value, message", [("[tensorboard,comet]", "non-empty list of tensorboard, wandb, mlflow, none"),
                                            ("[]", "non-empty list"),
                                            ("[none,wandb]", "none cannot be combined"),
                                            ("[wandb,wandb]", "lists a tracker twice")])
def test_log_with_values_are_checked(value, message):
    with pytest.raises(ConfigError, match=message):
        load_config("demo", overrides=[f"train.log_with={value}"])


def test_wandb_dir_and_wandb_project_are_honoured(tmp_path, offline, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-files"))
    monkeypatch.setenv("WANDB_PROJECT", "my-gans")
    run = train(tiny("train.log_with=[wandb]", "train.max_steps=1"), outdir=tmp_path / "run", progress=False)
    assert not (run / "wandb").exists()
    [wandb_file] = wandb_run_files(tmp_path / "wandb-files")
    assert [r["_step"] for r in wandb_history(wandb_file) if "loss/d_loss" in r] == [1]
    assert json.loads((run / STATE_FILE).read_text())["wandb"]["project"] == "my-gans"


@pytest.mark.slow
def test_train_py_with_all_three_trackers_writes_all_three(tmp_path):
    """The command of the issue, on the demo, as a user runs it (W&B offline)."""
    import os
    import subprocess

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": str(repo)}
    for var in ("WANDB_DIR", "WANDB_PROJECT", "MLFLOW_TRACKING_URI"):
        env.pop(var, None)
    out = tmp_path / "runs" / "00000-demo"
    subprocess.run([sys.executable, str(repo / "train.py"), "--set", "train.log_with=[tensorboard,wandb,mlflow]",
                    "--max-steps", "2", "--set", "data.demo_size=64", "--set", "train.log_every=1", "--outdir", str(out),
                    "--no-progress"], check=True, env=env, cwd=tmp_path, timeout=600)
    assert sorted(tensorboard_scalars(out, "loss/g_loss")) == [1, 2]
    [wandb_file] = wandb_run_files(out)
    assert [r["_step"] for r in wandb_history(wandb_file) if "loss/g_loss" in r] == [1, 2]
    client, mlrun = mlflow_run(out)
    assert sorted(mlflow_history(client, mlrun.info.run_id, "loss/g_loss")) == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing beside the run folder
