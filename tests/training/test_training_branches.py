"""Resuming onto another point of a run: what a branching resume keeps, what is abandoned (everything
off the resumed checkpoint's line of ancestry) and that best.pt follows the run's recorded best, also after a
kill between a checkpoint and its best.pt. Each test failed before its fix."""

from __future__ import annotations

import pytest
import torch

from conftest import TINY_TRAIN
from sagan.checkpoint import load_checkpoint
from sagan.config import load_config
from sagan.metrics.history import read_records
from sagan.training import Trainer, train


def tiny(*overrides: str):
    return load_config("demo", overrides=TINY_TRAIN + list(overrides))


def same_weights(a, b) -> bool:
    return all(torch.equal(a["G"][k], b["G"][k]) for k in a["G"])


def scripted_fids(monkeypatch, fids: dict[int, float]):
    """The watch's evaluation session returns ``fids[step]`` (the loop's step, read from the caller's frame)."""
    import inspect

    def scripted(session, G, num_samples, **kwargs):
        step = inspect.currentframe().f_back.f_locals["step"]
        return {"fid": fids[step], "inception_score": {"mean": 1.0, "std": 0.0}, "num_samples": 10}

    monkeypatch.setattr("sagan.metrics.session.EvalSession.of_generator", scripted)


def evaluated(demo_ref, *more):
    return tiny("train.fid_every=2", "train.checkpoint_every=2", "train.keep_checkpoints=10",
                f"data.ref_stats={demo_ref}", "train.eval_metrics=[fid,is]", *more)


def fids_of(run) -> list[tuple[int, float]]:
    return [(r["step"], r["values"]["fid"]) for r in read_records(run / "metrics.jsonl")]


# a resume in place from an older step or from RUN:best keeps the last state of the branch it leaves ---


def test_resume_from_an_older_step_in_place_keeps_the_newest_checkpoint_of_the_branch_left(tmp_path):
    cfg = tiny("train.checkpoint_every=2", "train.keep_checkpoints=5")
    run = train(cfg.replace(train={"max_steps": 6}), outdir=tmp_path / "r", progress=False)
    newest = load_checkpoint(run)
    train(cfg.replace(train={"max_steps": 3}), resume=run / "checkpoints" / "step_0000002.pt", progress=False)
    kept = load_checkpoint(run / "checkpoints" / "abandoned_last_step_0000006.pt")
    assert kept["step"] == 6 and same_weights(kept, newest)
    assert load_checkpoint(run)["step"] == 3
    assert "kept last.pt (step 6) of the branch left as abandoned_last_step_0000006.pt" in (run / "log.txt").read_text()


def test_resume_from_run_best_in_place_keeps_the_last_state(tmp_path, monkeypatch, demo_ref, inception_weights_file):
    scripted_fids(monkeypatch, {2: 5.0, 4: 3.0, 6: 4.0, 5: 9.0})
    w = str(inception_weights_file)
    run = train(evaluated(demo_ref, "train.max_steps=6"), outdir=tmp_path / "r", inception_weights=w, progress=False)
    newest = load_checkpoint(run)
    train(evaluated(demo_ref, "train.max_steps=5"), resume=f"{run}:best", inception_weights=w, progress=False)
    kept = load_checkpoint(run / "checkpoints" / "abandoned_last_step_0000006.pt")
    assert same_weights(kept, newest)
    assert load_checkpoint(f"{run}:best")["step"] == 4 and fids_of(run) == [(2, 5.0), (4, 3.0), (5, 9.0)]


# best.pt and metrics.jsonl follow the resumed line of ancestry -------------------------------------


def test_best_and_history_follow_the_resumed_line_of_ancestry(tmp_path, monkeypatch, demo_ref, inception_weights_file):
    w = str(inception_weights_file)
    ckpts = tmp_path / "r" / "checkpoints"
    scripted_fids(monkeypatch, {2: 5.0, 4: 3.0, 6: 4.0})  # branch A: best at step 4
    run = train(evaluated(demo_ref, "train.max_steps=6"), outdir=tmp_path / "r", inception_weights=w, progress=False)
    a4 = load_checkpoint(ckpts / "step_0000004.pt")

    scripted_fids(monkeypatch, {4: 6.0, 6: 7.0})  # branch B from step 2: its best is step 2
    train(evaluated(demo_ref, "train.max_steps=6", "train.lr_g=1e-4"), resume=ckpts / "step_0000002.pt",
          inception_weights=w, progress=False)
    assert fids_of(run) == [(2, 5.0), (4, 6.0), (6, 7.0)]
    assert load_checkpoint(f"{run}:best")["step"] == 2
    assert load_checkpoint(ckpts / "abandoned_best_step_0000004.pt")["step"] == 4
    b6 = load_checkpoint(run)

    scripted_fids(monkeypatch, {6: 8.0})  # back onto A at step 4: B's step 4 and its history are abandoned
    train(evaluated(demo_ref, "train.max_steps=6"), resume=ckpts / "abandoned_best_step_0000004.pt",
          inception_weights=w, progress=False)
    assert fids_of(run) == [(2, 5.0), (4, 3.0), (6, 8.0)]
    best = load_checkpoint(f"{run}:best")
    assert best["step"] == 4 and same_weights(best, a4)
    # both branches left at step 6 are kept, under names that never overwrite each other
    assert load_checkpoint(ckpts / "abandoned_last_step_0000006.pt")["meta"]["lineage"] == [[0, "0"]]
    assert same_weights(load_checkpoint(ckpts / "abandoned_last_step_0000006-2.pt"), b6)
    assert not (ckpts / "step_0000004.pt").exists()  # B's step 4 is off the path
    abandoned = [(r["step"], r["values"]["fid"]) for r in read_records(run / "metrics_abandoned.jsonl")]
    assert sorted(abandoned) == [(4, 6.0), (6, 4.0), (6, 7.0)]


# a kill between a checkpoint and its best.pt link is repaired at start-up --------------------------


def test_a_kill_between_a_checkpoint_and_its_best_link_is_repaired_at_start_up(tmp_path, monkeypatch, demo_ref,
                                                                                inception_weights_file):
    w = str(inception_weights_file)
    scripted_fids(monkeypatch, {2: 5.0, 4: 3.0, 6: 4.0})

    def killed(self):
        if self.step == 4:
            raise SystemExit(137)  # the process dies after writing step_0000004.pt, before best.pt
        original(self)

    original = Trainer.save_best
    monkeypatch.setattr(Trainer, "save_best", killed)
    with pytest.raises(SystemExit):
        train(evaluated(demo_ref, "train.max_steps=6"), outdir=tmp_path / "r", inception_weights=w, progress=False)
    run = tmp_path / "r"
    assert load_checkpoint(run)["step"] == 4 and load_checkpoint(f"{run}:best")["step"] == 2  # the window
    monkeypatch.setattr(Trainer, "save_best", original)
    train(evaluated(demo_ref, "train.max_steps=6"), resume=run, inception_weights=w, progress=False)
    assert load_checkpoint(f"{run}:best")["step"] == 4
    assert load_checkpoint(run)["meta"]["watch"]["best"] == {"step": 4, "fid": 3.0}
    assert fids_of(run) == [(2, 5.0), (4, 3.0), (6, 4.0)]
