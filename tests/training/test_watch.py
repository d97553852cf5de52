"""Evaluations during training: metrics.jsonl, TensorBoard metrics/, best.pt and RUN:best, and the
collapse watch."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import TINY_TRAIN
from sagan.checkpoint import load_checkpoint, resolve_checkpoint
from sagan.models import load_generator
from sagan.config import load_config
from sagan.errors import CheckpointError, ConfigError
from sagan.metrics.history import read_records
from sagan.commands.sample import main as sample_cli
from sagan.training import train
from sagan.training.watch import RunWatch


def tiny(*overrides: str):
    return load_config("demo", overrides=TINY_TRAIN + list(overrides))


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory, demo_ref, inception_weights_file):
    out = tmp_path_factory.mktemp("watch") / "run"
    cfg = tiny("train.max_steps=4", "train.fid_every=2", "train.checkpoint_every=4", f"data.ref_stats={demo_ref}",
               "train.eval_metrics=[fid,is,kid]")
    train(cfg, outdir=out, inception_weights=str(inception_weights_file), progress=False)
    return out


def test_each_evaluation_is_one_jsonl_line_and_tensorboard_scalars(evaluated_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    records = read_records(evaluated_run / "metrics.jsonl")
    assert [r["step"] for r in records] == [2, 4]
    for r in records:
        assert set(r["values"]) == {"fid", "is", "kid"} and r["values"]["fid"] > 0
        assert r["images_seen"] == r["step"] * 8 and r["wall_s"] >= 0
        assert r["protocol"]["resize"] == "tf1" and r["protocol"]["num_samples"] == 10
        assert r["protocol"]["generator"] == "ema" and r["protocol"]["bn_stats"] == "running"
    ea = EventAccumulator(str(evaluated_run))
    ea.Reload()
    fid = {e.step: e.value for e in ea.Scalars("metrics/fid")}
    assert fid == pytest.approx({r["step"]: r["values"]["fid"] for r in records})
    assert "metrics/kid" in ea.Tags()["scalars"] and "metrics/is" in ea.Tags()["scalars"]
    log = (evaluated_run / "log.txt").read_text()
    assert "demo step 2: FID" in log and "tf1 resize" in log


def test_best_checkpoint_is_the_lowest_fid_and_run_best_selects_it(evaluated_run, tmp_path):
    records = read_records(evaluated_run / "metrics.jsonl")
    best = min(records, key=lambda r: r["values"]["fid"])
    ckpt = load_checkpoint(f"{evaluated_run}:best")
    assert ckpt["path"].endswith("checkpoints/best.pt") and ckpt["step"] == best["step"]
    assert ckpt["meta"]["watch"]["best"]["step"] == best["step"]
    assert resolve_checkpoint(evaluated_run).name == "last.pt" and load_checkpoint(evaluated_run)["step"] == 4
    G, _, _ = load_generator(f"{evaluated_run}:best")
    result = CliRunner().invoke(sample_cli, ["--checkpoint", f"{evaluated_run}:best", "--out", str(tmp_path / "g.png"),
                                             "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "g.png").is_file()


def test_run_best_without_evaluations_is_a_clear_error(tmp_path):
    run = train(tiny("train.max_steps=1"), outdir=tmp_path / "run", progress=False)
    with pytest.raises(CheckpointError, match="no best checkpoint in .*train.fid_every"):
        resolve_checkpoint(f"{run}:best")


def test_resume_continues_the_history_and_the_best(evaluated_run, tmp_path, inception_weights_file):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(evaluated_run, run)
    cfg = load_config(run / "config.yaml", overrides=["train.max_steps=6"])
    train(cfg, resume=run, inception_weights=str(inception_weights_file), progress=False)
    steps = [r["step"] for r in read_records(run / "metrics.jsonl")]
    assert steps == [2, 4, 6]
    assert load_checkpoint(run)["meta"]["watch"]["best"]["fid"] == min(
        r["values"]["fid"] for r in read_records(run / "metrics.jsonl"))


# --------------------------------------------------------------------------------------------------
# collapse watch


class FakeMonitor:
    def __init__(self):
        self.lines, self.texts, self.scalar_log = [], [], []

    def say(self, msg, console=True):
        self.lines.append(msg)

    def text(self, tag, text, step):
        self.texts.append((tag, text, step))

    def scalars(self, values, step):
        self.scalar_log.append((step, values))


def make_watch(tmp_path, *overrides):
    from accelerate import Accelerator

    return RunWatch(tiny(*overrides), tmp_path, Accelerator(cpu=True), FakeMonitor(), None)


def test_fid_collapse_warns_once_naming_the_best_step(tmp_path):
    w = make_watch(tmp_path, "train.collapse_margin=0.2", "train.collapse_patience=2")
    for step, fid in ((100, 50.0), (200, 40.0), (300, 49.0), (400, 55.0), (500, 60.0), (600, 61.0)):
        w._update_best(step, fid)
        stop = w._metric_collapse(step, fid)
        assert stop is False
    warnings = [m for m in w.monitor.lines if "possible collapse" in m]
    assert len(warnings) == 1  # 49 and 55 are two in a row above 40 * 1.2 = 48: one warning, at step 400
    assert "at step 400" in warnings[0] and "best checkpoint is step 200 (FID 40.00)" in warnings[0]
    assert w.monitor.texts and w.monitor.texts[0][0] == "collapse"


def test_stop_on_collapse_asks_the_loop_to_stop(tmp_path):
    w = make_watch(tmp_path, "train.collapse_patience=1", "train.stop_on_collapse=true")
    w._update_best(100, 30.0)
    assert w._metric_collapse(100, 30.0) is False
    assert w._metric_collapse(200, 80.0) is True
    assert "stopping (train.stop_on_collapse)" in w.monitor.lines[-1]


def test_best_metric_higher_is_better_picks_the_highest_and_watches_for_drops(tmp_path):
    w = make_watch(tmp_path, "train.eval_metrics=[fid,is]", "train.best_metric=is", "train.collapse_margin=0.2",
                   "train.collapse_patience=2")
    new_best = []
    for step, score in ((100, 5.0), (200, 8.0), (300, 6.0), (400, 6.3), (500, 9.0)):
        new_best.append(w._update_best(step, score))
        assert w._metric_collapse(step, score) is False
    assert new_best == [True, True, False, False, True] and w.best == {"step": 500, "is": 9.0}
    warnings = [m for m in w.monitor.lines if "possible collapse" in m]
    assert len(warnings) == 1  # 6.0 and 6.3 are two in a row below 8 * 0.8 = 6.4
    assert "at step 400" in warnings[0] and "IS has been more than 20% below the best" in warnings[0]
    assert "best checkpoint is step 200 (IS 8.00)" in warnings[0]


def test_a_best_of_another_metric_is_not_carried_into_a_resume(tmp_path):
    from accelerate import Accelerator

    state = {"best": {"step": 100, "fid": 30.0}, "streaks": {}, "warned": {}}
    kept = RunWatch(tiny(), tmp_path, Accelerator(cpu=True), FakeMonitor(), None, state=state)
    assert kept.best == {"step": 100, "fid": 30.0}  # the checkpoint format of before best_metric
    other = RunWatch(tiny("train.eval_metrics=[fid,is]", "train.best_metric=is"), tmp_path, Accelerator(cpu=True),
                     FakeMonitor(), None, state=state)
    assert other.best is None


def test_best_metric_must_be_evaluated():
    with pytest.raises(ConfigError, match="train.best_metric='kid' must be one of train.eval_metrics"):
        tiny("train.best_metric=kid")


def test_a_logit_gap_held_for_the_patience_warns_once_and_gap_0_switches_it_off(tmp_path):
    w = make_watch(tmp_path, "train.collapse_logit_gap=5", "train.collapse_patience=3")
    wide, narrow = {"d_logits_real": 4.0, "d_logits_fake": -3.0}, {"d_logits_real": 1.0, "d_logits_fake": -1.0}
    assert [w.check_logits(s, st) for s, st in enumerate((wide, wide, narrow, wide, wide, wide), 1)] == [False] * 6
    warnings = [m for m in w.monitor.lines if "logit gap of 7.0" in m]
    assert len(warnings) == 1 and "at step 6" in warnings[0] and "no evaluation has run yet" in warnings[0]
    off = make_watch(tmp_path, "train.collapse_logit_gap=0")
    assert off.check_logits(1, wide) is False and not off.monitor.lines


def test_stop_on_collapse_in_the_real_loop_saves_and_stops(tmp_path, monkeypatch, demo_ref, inception_weights_file):
    fids = iter([30.0, 90.0, 95.0, 99.0])

    def scripted(session, G, num_samples, **kwargs):
        return {"fid": next(fids), "inception_score": {"mean": 1.0, "std": 0.0}, "num_samples": 10}

    monkeypatch.setattr("sagan.metrics.session.EvalSession.of_generator", scripted)
    cfg = tiny("train.max_steps=10", "train.fid_every=1", "train.collapse_patience=2", "train.stop_on_collapse=true",
               f"data.ref_stats={demo_ref}", "train.eval_metrics=[fid,is]")
    run = train(cfg, outdir=tmp_path / "run", inception_weights=str(inception_weights_file), progress=False)
    assert load_checkpoint(run)["step"] == 3 and load_checkpoint(f"{run}:best")["step"] == 1
    log = (run / "log.txt").read_text()
    assert "possible collapse at step 3" in log and "stopped on collapse" in log
    assert [json.loads(line)["values"]["fid"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [30, 90, 95]
